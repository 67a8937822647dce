import TestSupport
import EasyRemote
import Foundation
import NodeCommGRPC
import RemoteHosts
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

// What a host offers: its Python environments, GPUs and agent, and the shell words sent to it.
extension RemoteHostsTests {
  /// Inspection finds virtualenvs (one with a space in its name) and conda environments
  /// (`conda env list --json`), each with its Python version; `detect` refreshes the cache.
  @Test func inspectionFindsVenvsAndCondaEnvironments() async throws {
    let stack = try await Stack()
    let home = stack.ssh.home
    let fm = FileManager.default
    let made = [home + "/.venvs", home + "/miniconda3"]
    for folder in made { try? fm.removeItem(atPath: folder) }
    defer { for folder in made { try? fm.removeItem(atPath: folder) } }
    let id = try await stack.connect()
    let before = try await stack.get("/api/remote/environments?connection_id=\(id)")
    #expect((before.object["environments"] as? [[String: Any]] ?? []).allSatisfy { $0["type"] as? String == "system" }, "\(before.text)")

    for bin in [home + "/.venvs/my env/bin", home + "/miniconda3/bin", home + "/miniconda3/envs/torch; x/bin"] {
      try fm.createDirectory(atPath: bin, withIntermediateDirectories: true)
      try fm.createSymbolicLink(atPath: bin + "/python", withDestinationPath: "/usr/bin/python3")
    }
    let conda = """
      #!/bin/sh
      [ "$1 $2 $3" = "env list --json" ] || exit 2
      printf '{"envs": ["%s/miniconda3", "%s/miniconda3/envs/torch; x"]}\\n' "$HOME" "$HOME"

      """
    fm.createFile(atPath: home + "/miniconda3/bin/conda", contents: Data(conda.utf8), attributes: [.posixPermissions: 0o755])
    try await SSHServer.run("/bin/chown", "-R", "\(SSHServer.user):\(SSHServer.user)", home)

    // Cached until detect.
    let cached = try await stack.get("/api/remote/environments?connection_id=\(id)")
    #expect((cached.object["environments"] as? [[String: Any]])?.count == (before.object["environments"] as? [[String: Any]])?.count)
    let detect = try await stack.post("/api/remote/environments/detect", ["connection_id": id])
    #expect(detect.status == 200, "\(detect.text)")
    let after = try await stack.get("/api/remote/environments?connection_id=\(id)")
    let list = after.object["environments"] as? [[String: Any]] ?? []
    let byName = Dictionary(list.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { first, _ in first })
    #expect(byName["my env"]?["type"] as? String == "venv", "\(after.text)")
    #expect(byName["my env"]?["python_path"] as? String == home + "/.venvs/my env/bin/python")
    #expect(byName["base"]?["type"] as? String == "conda", "\(after.text)")
    #expect(byName["torch; x"]?["type"] as? String == "conda", "\(after.text)")
    #expect((byName["torch; x"]?["python_version"] as? String)?.hasPrefix("3.") == true)
    #expect(detect.object["environments_found"] as? Int == list.count)
    // An agent runs in the venv named with a space.
    let start = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": "my env"])
    #expect(start.status == 200, "\(start.text)")
    #expect((start.object["viewer"] as? [String: Any])?["python_path"] as? String == home + "/.venvs/my env/bin/python")
    await stack.stop()
  }

  /// What the inspection script prints becomes environments (one per interpreter, names
  /// unique), GPUs and the installed agent; and whether an agent can get there, or why not.
  @Test func inspectionParsingAndAgentPlans() {
    let text = [
      "os=Linux", "kernel=6.1.0", "arch=x86_64", "hostname=gpu-box", "cores=16", "memory_kb=65536000", "home=/home/ml",
      "gpu=NVIDIA A100-SXM4-40GB, 40960", "gpu=NVIDIA A100-SXM4-40GB, 40960",
      "env\tsystem\tpython3\t/usr/bin/python3\t3.11.2", "env\tsystem\tpython\t/usr/bin/python\t3.11.2",
      "env\tvenv\tpython3\t/home/ml/venvs/python3/bin/python\t3.10.1", "conda\t/home/ml/miniconda3/bin/conda",
      "agent\t/home/ml/.local/bin/easyremote\teasyremote 0.3.0", "agent\t/usr/local/bin/easyremote\teasyremote 9.9.9",
    ].joined(separator: "\n")
    let inspection = HostInspector.parse(text, agentVersion: "9.9.9")
    #expect(inspection.hostname == "gpu-box" && inspection.cores == 16 && inspection.memoryBytes == 65_536_000 * 1024)
    #expect(inspection.gpus.count == 2 && inspection.gpus[0].memoryMB == 40960 && inspection.gpus[0].name.hasPrefix("NVIDIA A100"))
    #expect(inspection.environments.map(\.name) == ["python3", "python3-venv"])
    #expect(inspection.agent?.path == "/usr/local/bin/easyremote" && inspection.agent?.version == "9.9.9")
    #expect(AgentDeployer.plan(for: inspection, version: "9.9.9") == .installed("/usr/local/bin/easyremote"))
    #expect(AgentDeployer.plan(for: inspection, version: "1.0.0", localArchitecture: "x86_64") == .upload)
    guard case .unavailable(let reason) = AgentDeployer.plan(for: inspection, version: "1.0.0", localArchitecture: "aarch64") else {
      Issue.record("an x86_64 host cannot take an aarch64 binary")
      return
    }
    #expect(reason.contains("x86_64") && reason.contains("aarch64") && reason.contains("install easyremote 1.0.0"))
    var mac = inspection
    mac.os = "Darwin"
    guard case .unavailable(let macReason) = AgentDeployer.plan(for: mac, version: "1.0.0", localArchitecture: "x86_64") else {
      Issue.record("a Darwin host cannot take a Linux binary")
      return
    }
    #expect(macReason.contains("Darwin") && macReason.contains("easyremote 9.9.9 at /usr/local/bin/easyremote"))
  }

  @Test func shellQuotingSurvivesAnyText() async throws {
    for text in ["plain", "two words", "it's", "\"double\"", "; rm -rf /", "$(id)", "`id`", "a\nb", "", "-n", "é ü", "\\"] {
      let echoed = try await SSHServer.run("/bin/sh", "-c", "printf '%s' " + ShellQuote.quote(text))
      #expect(echoed == text)
    }
  }
}
