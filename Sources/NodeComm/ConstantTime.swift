/// Whether a presented secret (a token, a node key) equals the expected one, compared in time
/// that depends on their lengths only, not on where they first differ.
public func constantTimeEqual(_ presented: String, _ expected: String) -> Bool {
  let (a, b) = (Array(presented.utf8), Array(expected.utf8))
  var difference = UInt8(a.count == b.count ? 0 : 1)
  for index in 0..<max(a.count, b.count) {
    difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
  }
  return difference == 0
}
