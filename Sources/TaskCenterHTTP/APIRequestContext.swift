public import Hummingbird
public import HummingbirdWebSocket
import NIOCore

/// The request context of the API: WebSocket upgrades (`/ws/updates`) and the caller's IP
/// address (a key-less pulling worker is known by it).
public struct APIRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
  public var coreContext: CoreRequestContextStorage
  public let webSocket: WebSocketHandlerReference<Self>
  public let remoteAddress: SocketAddress?

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    webSocket = .init()
    remoteAddress = source.channel.remoteAddress
  }

  /// The caller's IP address, without its port.
  var remoteIP: String? { remoteAddress?.ipAddress }
}
