import Crypto
import Foundation
import NodeComm
import SwiftASN1
import X509

/// A certificate authority and certificates made for one test run.
struct TestCertificates {
  struct Identity {
    let certificatePEM: String
    let privateKeyPEM: String
  }

  let caPEM: String
  let server: Identity
  let client: Identity

  /// A CA and a server and client certificate it signed.
  static func make(name: String = "EasyRemote Test") throws -> TestCertificates {
    let caKey = P256.Signing.PrivateKey()
    let caName = try DistinguishedName { CommonName("\(name) CA") }
    let now = Date()
    let ca = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey),
      notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: caName, subject: caName,
      signatureAlgorithm: .ecdsaWithSHA256,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true))
      },
      issuerPrivateKey: .init(caKey))

    func leaf(_ commonName: String) throws -> Identity {
      let key = P256.Signing.PrivateKey()
      let certificate = try Certificate(
        version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
        notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: caName,
        subject: try DistinguishedName { CommonName(commonName) },
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true))
          try ExtendedKeyUsage([.serverAuth, .clientAuth])
          SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
        },
        issuerPrivateKey: .init(caKey))
      return Identity(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }

    return TestCertificates(
      caPEM: try ca.serializeAsPEM().pemString, server: try leaf("\(name) server"), client: try leaf("\(name) client"))
  }
}
