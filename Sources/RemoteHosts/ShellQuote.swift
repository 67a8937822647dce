/// Quoting for the POSIX shell that `sshd` runs every remote command in.
///
/// SSH sends a remote command as one string that the user's login shell parses, so each
/// argument goes in single quotes (where nothing is special) with every `'` written as `'\''`.
/// No string from a user — a path, an environment name, a node id — reaches a remote shell
/// any other way.
package enum ShellQuote {
  /// `text` as one shell word.
  package static func quote(_ text: String) -> String {
    if !text.isEmpty && text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:@,+".contains($0)) }) {
      return text
    }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }

  /// A command line of `arguments`, each one word.
  package static func command(_ arguments: [String]) -> String {
    arguments.map(quote).joined(separator: " ")
  }
}
