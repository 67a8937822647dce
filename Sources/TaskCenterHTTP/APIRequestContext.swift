public import Hummingbird
public import HummingbirdWebSocket
import NIOCore

/// The request context of the API: WebSocket upgrades (`/ws/updates`) and the caller's IP
/// address (a key-less pulling worker is known by it).
public struct APIRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
  public var coreContext: CoreRequestContextStorage
  public let webSocket: WebSocketHandlerReference<Self>
  public let remoteAddress: SocketAddress?
  /// The connection it came on (the key of the server's connection table).
  let connection: ObjectIdentifier

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    webSocket = .init()
    remoteAddress = source.channel.remoteAddress
    connection = ObjectIdentifier(source.channel)
  }

  /// The caller's IP address, without its port.
  var remoteIP: String? { remoteAddress?.ipAddress }
}
