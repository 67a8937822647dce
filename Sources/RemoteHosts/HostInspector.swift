import Foundation

/// Finds out what a host offers with one fixed script (no user text in it) and, when conda is
/// there, one more command for its environments' Python versions.
package enum HostInspector {
  /// Prints `key=value` lines, `gpu=name, memory` lines, `env<TAB>type<TAB>name<TAB>python<TAB>version`
  /// lines and `agent<TAB>path<TAB>version` lines, and `conda<TAB>path` for a conda to ask.
  static let script = #"""
    LC_ALL=C; export LC_ALL
    echo "os=$(uname -s)"
    echo "kernel=$(uname -r)"
    echo "arch=$(uname -m)"
    echo "hostname=$(hostname 2>/dev/null || uname -n)"
    echo "cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 1)"
    echo "memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
    echo "home=$HOME"
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null | while IFS= read -r g; do echo "gpu=$g"; done
    fi
    py() {
      v=$("$3" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) && printf 'env\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$v"
    }
    for n in python3 python; do
      p=$(command -v "$n" 2>/dev/null) && py system "$n" "$p"
    done
    for d in "$HOME/.venv" "$HOME/venv" "$HOME"/.venvs/* "$HOME"/venvs/* "$HOME"/.virtualenvs/* "$HOME"/envs/* "$HOME"/.pyenv/versions/*; do
      [ -x "$d/bin/python" ] && py venv "$(basename "$d")" "$d/bin/python"
    done
    for c in "$(command -v conda 2>/dev/null)" "$HOME/miniconda3/bin/conda" "$HOME/anaconda3/bin/conda" "$HOME/miniforge3/bin/conda" "$HOME/mambaforge/bin/conda"; do
      if [ -n "$c" ] && [ -x "$c" ]; then printf 'conda\t%s\n' "$c"; break; fi
    done
    for a in "$(command -v easyremote 2>/dev/null)" "$HOME/.local/bin/easyremote" "$HOME"/.cache/easyremote/agents/*/easyremote; do
      if [ -n "$a" ] && [ -x "$a" ]; then v=$("$a" --version 2>/dev/null) && printf 'agent\t%s\t%s\n' "$a" "$v"; fi
    done
    true
    """#

  static func inspect(_ connection: SSHConnection, agentVersion: String) async throws(RemoteHostError) -> HostInspection {
    let output = try await connection.run(script: script, timeout: .seconds(60))
    guard output.status == 0 else {
      throw RemoteHostError(code: .sshError, message: "inspecting the host failed (exit \(output.status)): \(output.stderr)")
    }
    var inspection = parse(String(decoding: output.stdout, as: UTF8.self), agentVersion: agentVersion)
    if let conda = condaPath(String(decoding: output.stdout, as: UTF8.self)) {
      inspection.environments += await condaEnvironments(connection, conda: conda, known: inspection.environments)
    }
    inspection.environments = uniquelyNamed(inspection.environments)
    return inspection
  }

  package static func parse(_ text: String, agentVersion: String) -> HostInspection {
    var values: [String: String] = [:]
    var gpus: [HostInspection.GPU] = []
    var environments: [RemoteEnvironment] = []
    var agents: [HostInspection.InstalledAgent] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
      let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      switch fields.first {
      case "env" where fields.count == 5:
        let environment = RemoteEnvironment(name: fields[2], type: fields[1], pythonPath: fields[3], pythonVersion: fields[4])
        // `python` is often `python3`: one entry per interpreter and version.
        if !environments.contains(where: { $0.pythonPath == environment.pythonPath || ($0.type == "system" && environment.type == "system" && $0.pythonVersion == environment.pythonVersion) }) {
          environments.append(environment)
        }
      case "agent" where fields.count == 3:
        agents.append(.init(path: fields[1], version: fields[2].replacingOccurrences(of: "easyremote ", with: "")))
      case "conda":
        break
      default:
        guard let equals = line.firstIndex(of: "=") else { continue }
        let key = String(line[..<equals])
        let value = String(line[line.index(after: equals)...])
        if key == "gpu" {
          let parts = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
          gpus.append(.init(name: parts.first ?? value, memoryMB: parts.count > 1 ? Int(parts[1]) : nil))
        } else {
          values[key] = value
        }
      }
    }
    return HostInspection(
      hostname: values["hostname"] ?? "", os: values["os"] ?? "", kernel: values["kernel"] ?? "",
      architecture: values["arch"] ?? "", cores: Int(values["cores"] ?? "") ?? 1,
      // (A host's word: a kilobyte count past Int64 / 1024 is taken as the most there can be.)
      memoryBytes: Int64(values["memory_kb"] ?? "").map { min(max($0, 0), Int64.max / 1024) * 1024 } ?? 0, home: values["home"] ?? "", gpus: gpus,
      environments: uniquelyNamed(environments), agent: agents.first { $0.version == agentVersion } ?? agents.first, detectedAt: Date())
  }

  /// Names are unique: one called like an earlier one gets its type, then a number, as a suffix.
  static func uniquelyNamed(_ environments: [RemoteEnvironment]) -> [RemoteEnvironment] {
    var seen: Set<String> = []
    var result = environments
    for index in result.indices {
      var name = result[index].name
      if seen.contains(name) { name += "-\(result[index].type)" }
      var suffix = 2
      while seen.contains(name) {
        name = result[index].name + "-\(suffix)"
        suffix += 1
      }
      result[index].name = name
      seen.insert(name)
    }
    return result
  }

  private static func condaPath(_ text: String) -> String? {
    text.split(separator: "\n").first { $0.hasPrefix("conda\t") }.map { String($0.dropFirst("conda\t".count)) }
  }

  /// `conda env list --json`, then each environment's Python version.
  private static func condaEnvironments(_ connection: SSHConnection, conda: String, known: [RemoteEnvironment]) async
    -> [RemoteEnvironment]
  {
    struct List: Decodable { var envs: [String] }
    guard let output = try? await connection.run([conda, "env", "list", "--json"], timeout: .seconds(60)),
      output.status == 0, let list = try? JSONDecoder().decode(List.self, from: output.stdout)
    else { return [] }
    var found: [RemoteEnvironment] = []
    for path in list.envs {
      let python = path + "/bin/python"
      guard !known.contains(where: { $0.pythonPath == python }),
        let version = try? await connection.run(
          [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], timeout: .seconds(30)),
        version.status == 0
      else { continue }
      let name = path.split(separator: "/").last.map(String.init) ?? path
      found.append(
        RemoteEnvironment(
          name: list.envs.first == path ? "base" : name, type: "conda", pythonPath: python,
          pythonVersion: String(decoding: version.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
    }
    return found
  }
}
