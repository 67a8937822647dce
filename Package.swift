// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
  name: "EasyRemote",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "NodeComm", targets: ["NodeComm"]),
    .library(name: "NodeCommGRPC", targets: ["NodeCommGRPC"]),
    .library(name: "EasyRemoteCore", targets: ["EasyRemoteCore"]),
    .library(name: "EasyRemote", targets: ["EasyRemote"]),
    .library(name: "TaskCenter", targets: ["TaskCenter"]),
    .library(name: "Sandbox", targets: ["Sandbox"]),
    .library(name: "TaskCenterHTTP", targets: ["TaskCenterHTTP"]),
    .library(name: "RemoteHosts", targets: ["RemoteHosts"]),
    .executable(name: "easyremote", targets: ["EasyRemoteCLI"]),
    .executable(name: "easyremote-bench", targets: ["EasyRemoteBench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0", traits: []),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
  ],
  targets: [
    // MessagePack for `Codable` values (the `binary` serializer), on its own: no dependencies.
    .target(name: "MessagePack", swiftSettings: strict),
    // Layer 1: the node layer — messages, links, transports, serializers, interceptors.
    .target(
      name: "NodeComm",
      dependencies: [
        "MessagePack",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "CompressNIO", package: "compress-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "Yams", package: "Yams"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // The gRPC transport for the node layer (one bidirectional stream per link).
    .target(
      name: "NodeCommGRPC",
      dependencies: [
        "NodeComm",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    // Metrics: swift-metrics instruments with swift-prometheus as the backend, and the catalogue
    // of every metric's name, help text and buckets.
    .target(
      name: "EasyRemoteMetrics",
      dependencies: [
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      swiftSettings: strict
    ),
    // Layer 2: the gateway, compute nodes and clients, all nodes of layer 1, over any transport.
    .target(
      name: "EasyRemoteCore",
      dependencies: [
        "NodeComm",
        "MessagePack",
        "EasyRemoteMetrics",
        "Sandbox",
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // The edge users import: the compute layer with gRPC as its default transport.
    .target(
      name: "EasyRemote",
      dependencies: [
        "EasyRemoteCore",
        "EasyRemoteMetrics",
        "NodeComm",
        "NodeCommGRPC",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // Layer 3: the task center — durable store, fair scheduler.
    .target(
      name: "TaskCenter",
      dependencies: [
        "EasyRemoteCore",
        "EasyRemoteMetrics",
        "NodeComm",
        "Sandbox",
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // Layer 4: the task center's REST API and WebSocket events (Hummingbird).
    .target(
      name: "TaskCenterHTTP",
      dependencies: [
        "TaskCenter",
        "RemoteHosts",
        "EasyRemoteCore",
        "NodeComm",
        "EasyRemoteMetrics",
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdTLS", package: "hummingbird"),
        .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      resources: [.copy("openapi.yaml"), .copy("web")],
      swiftSettings: strict
    ),
    // Remote hosts over SSH (seed 003): the system's OpenSSH client, host inspection, agents.
    .target(
      name: "RemoteHosts",
      dependencies: [
        "Sandbox",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    // Running code tasks on a node: child processes in a bubblewrap sandbox, under limits.
    .target(name: "Sandbox", dependencies: ["CSpawn"], swiftSettings: strict),
    // posix_spawn with exact descriptors and a session of its own, memfd and pipe2 (Linux).
    .target(name: "CSpawn"),
    // The seed 002 example functions, shared by the demo, the examples and the tests.
    .target(name: "ExampleFunctions", dependencies: ["EasyRemoteCore"], swiftSettings: strict),
    .executableTarget(
      name: "EasyRemoteCLI",
      dependencies: [
        "EasyRemote",
        "TaskCenter",
        "TaskCenterHTTP",
        "RemoteHosts",
        "Sandbox",
        "ExampleFunctions",
        "EasyRemoteMetrics",
        "NodeComm",
        "NodeCommGRPC",
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "EasyRemoteBench",
      dependencies: [
        "EasyRemote",
        "TaskCenter",
        "TaskCenterHTTP",
        "NodeComm",
        "NodeCommGRPC",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // Examples/AsyncStream: the seed 002 set as three programs.
    .executableTarget(
      name: "async-stream-server", dependencies: ["EasyRemote"], path: "Examples/AsyncStream/Server",
      swiftSettings: strict),
    .executableTarget(
      name: "async-stream-node", dependencies: ["EasyRemote", "ExampleFunctions"],
      path: "Examples/AsyncStream/ComputeNode", swiftSettings: strict),
    .executableTarget(
      name: "async-stream-client", dependencies: ["EasyRemote", "ExampleFunctions"],
      path: "Examples/AsyncStream/Client", swiftSettings: strict),
    // What the test targets share: a clock tests move, waiting on events, signals, the programs
    // tests start (under the spawner's die-with-parent rule).
    .target(name: "TestSupport", dependencies: ["Sandbox"], path: "Tests/TestSupport", swiftSettings: strict),
    .testTarget(
      name: "NodeCommTests",
      dependencies: [
        "TestSupport",
        "NodeComm",
        "MessagePack",
        "NodeCommGRPC",
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "MetricsTestKit", package: "swift-metrics"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "TaskCenterTests",
      dependencies: [
        "TestSupport", "TaskCenter", "Sandbox", "EasyRemote", "EasyRemoteCore", "ExampleFunctions", "TaskCenterHTTP", "NodeComm",
        "NodeCommGRPC", "RemoteHosts",
        .product(name: "HummingbirdTesting", package: "hummingbird"),
        .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
        .product(name: "Yams", package: "Yams"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
      ],
      exclude: ["Fixtures"],  // read by path (`#filePath`), copied before use
      swiftSettings: strict
    ),
    .testTarget(
      name: "EasyRemoteTests",
      dependencies: [
        "TestSupport",
        "EasyRemote",
        "EasyRemoteCore",
        "NodeCommGRPC",
        "ExampleFunctions",
        "NodeComm",
        "Sandbox",
      ],
      swiftSettings: strict
    ),
  ]
)
