import ArgumentParser
import Foundation
import NodeComm
import NodeCommGRPC
import ServiceLifecycle
import Logging

/// The main job: two nodes linked over gRPC on loopback, calling each other.
struct DemoCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "demo",
    abstract: "Start a hub node and a worker node over gRPC on loopback and call both ways."
  )

  @Option(help: "The host the hub listens on.") var host = "127.0.0.1"
  @Option(help: "The port the hub listens on (0 picks a free one).") var port = 7700
  @Flag(help: "Exit after the demonstration instead of serving until Ctrl-C.") var once = false

  func run() async throws {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .warning
      return handler
    }
    let hubConfig = NodeConfig.defaults {
      $0.transport = TransportConfig(mode: .grpc, host: host, port: port)
    }
    let hub = Node(id: "hub", config: hubConfig)
    ExampleMethods.register(on: hub)
    try await hub.start()
    let address = hub.listeningAddress ?? "\(host):\(port)"
    print("hub listening on \(address)")

    // The worker does not listen: like a machine behind NAT it dials out, and the hub
    // calls it back over that same link.
    let worker = Node(id: "worker", config: .defaults { $0.transport = TransportConfig(mode: .grpc, listen: false) })
    ExampleMethods.register(on: worker)
    try await worker.start()
    try await worker.connect(to: "hub", at: address)
    print("worker linked to hub (worker dialed out; it has no open port)")

    let sum: Double = try await worker.call("hub", "add", [1.5, 2.5, 3])
    print("worker → hub  add([1.5, 2.5, 3]) = \(sum)")
    let who: String = try await hub.call("worker", "whoami", Empty())
    print("hub → worker  whoami = \(who)")
    let start = ContinuousClock.now
    let rounds = 1000
    for i in 0..<rounds { _ = try await hub.call("worker", "echo", payload: .raw(Data("ping \(i)".utf8))) }
    let each = (ContinuousClock.now - start) / rounds
    let micros = Double(each.components.attoseconds) / 1e12 + Double(each.components.seconds) * 1e6
    print("hub → worker  \(rounds) sequential echo calls, \(Int(micros)) µs each")
    do {
      _ = try await hub.call("worker", "nope", payload: .empty)
    } catch let error as NodeError {
      print("hub → worker  unknown method: \(error.code): \(error.message)")
    }
    do {
      let _: Double = try await hub.call("worker", "sleep", ExampleMethods.SleepRequest(seconds: 5), timeout: .milliseconds(200))
    } catch let error as NodeError {
      print("hub → worker  sleep(5) with a 200 ms timeout: \(error.code): \(error.message)")
    }

    if !once {
      print("\nServing until Ctrl-C. Try it from another terminal with a peer of your own:")
      print("  swift run easyremote peer --id other   # serves echo, add, whoami, sleep")
      let group = ServiceGroup(
        services: [ShutdownWaiter()], gracefulShutdownSignals: [.sigterm, .sigint],
        logger: Logger(label: "easyremote.demo"))
      try await group.run()
    }
    await worker.stop()
    await hub.stop()
    print("stopped")
  }
}

/// Waits for the service group's graceful shutdown.
private struct ShutdownWaiter: Service {
  func run() async throws {
    try? await gracefulShutdown()
  }
}
