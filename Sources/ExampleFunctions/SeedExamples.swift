public import EasyRemoteCore
import Foundation
import Synchronization

/// The example functions of seed 002 (sync, async and streaming), plus `echo`, as a compute
/// node serves them in `easyremote demo` and in `Examples/AsyncStream`.
///
/// Every result is deterministic for its input so that clients and tests can check it.
public enum SeedExamples {
  public struct DataSummary: Codable, Sendable, Equatable {
    public var count: Int
    public var sum: Double
    public var mean: Double
    public var min: Double
    public var max: Double

    public init(count: Int, sum: Double, mean: Double, min: Double, max: Double) {
      self.count = count
      self.sum = sum
      self.mean = mean
      self.min = min
      self.max = max
    }
  }

  public struct Computation: Codable, Sendable, Equatable {
    public var input: [Double]
    public var squares: [Double]
    public var total: Double
    public var delay: Double
  }

  public struct AIResult: Codable, Sendable, Equatable {
    public var text: String
    public var tokens: Int
    public var sentiment: String
    public var confidence: Double
    public var modelDelay: Double
  }

  public struct NumberItem: Codable, Sendable, Equatable {
    public var index: Int
    public var value: Int
  }

  public struct SensorConfig: Codable, Sendable {
    public var sensors: [String]
    public var sample_rate: Double
    public var duration: Double

    public init(sensors: [String], sample_rate: Double, duration: Double) {
      self.sensors = sensors
      self.sample_rate = sample_rate
      self.duration = duration
    }
  }

  public struct SensorReading: Codable, Sendable, Equatable {
    public var sample: Int
    public var sensor: String
    public var value: Double

    public init(sample: Int, sensor: String, value: Double) {
      self.sample = sample
      self.sensor = sensor
      self.value = value
    }
  }

  public struct InferenceBatch: Codable, Sendable, Equatable {
    public struct Prediction: Codable, Sendable, Equatable {
      public var image: String
      public var label: String
      public var confidence: Double
    }
    public var batch: Int
    public var predictions: [Prediction]
  }

  public struct PipelineConfig: Codable, Sendable {
    public var stages: Int
    public var items_per_stage: Int
    public var stage_delay: Double

    public init(stages: Int, items_per_stage: Int, stage_delay: Double) {
      self.stages = stages
      self.items_per_stage = items_per_stage
      self.stage_delay = stage_delay
    }
  }

  public struct PipelineItem: Codable, Sendable, Equatable {
    public var stage: Int
    public var item: Int
    public var source: String
    public var progress: Double
  }

  /// The names of the functions `register(on:)` adds.
  public static let names = [
    "sync_add", "sync_process_data", "async_computation", "async_ai_simulation", "sync_number_stream",
    "async_data_stream", "async_ml_inference_stream", "async_complex_pipeline", "echo",
  ]

  /// Registers every example function on `node`.
  public static func register(on node: ComputeNode) {
    node.register("sync_add", description: "Adds two numbers", parameters: ["a", "b"], idempotent: true) {
      (a: Double, b: Double) in a + b
    }
    node.register("sync_process_data", description: "Summarises a list of numbers", parameters: ["data"], idempotent: true) {
      (data: [Double]) in summary(data)
    }
    node.register(
      "async_computation", description: "Squares numbers after a delay", parameters: ["data", "delay"], idempotent: true
    ) {
      (data: [Double], delay: Double) async throws in
      try await pause(try InputBounds.check(delay, InputBounds.waitSeconds, field: "delay"))
      let squares = data.map { $0 * $0 }
      return Computation(input: data, squares: squares, total: squares.reduce(0, +), delay: delay)
    }
    node.register("async_ai_simulation", description: "Pretends to run a language model", parameters: ["text", "model_delay"]) {
      (text: String, modelDelay: Double) async throws in
      try await pause(try InputBounds.check(modelDelay, InputBounds.waitSeconds, field: "model_delay"))
      return analyse(text, modelDelay: modelDelay)
    }
    node.registerStream("sync_number_stream", description: "Counts from start", parameters: ["start", "count", "interval"]) {
      (start: Int, count: Int, interval: Double) in
      try InputBounds.check(interval, InputBounds.waitSeconds, field: "interval")
      // The last value must fit: start + count - 1 never overflows.
      guard count <= 0 || start <= Int.max - (count - 1) else {
        throw InputBoundsError(field: "count", value: "\(count)", range: "0...\(Int.max - start + 1) from start \(start)")
      }
      return paced(count, interval: interval) { i in NumberItem(index: i, value: start + i) }
    }
    node.registerStream("async_data_stream", description: "Simulated sensor readings", parameters: ["config"]) {
      (config: SensorConfig) in
      try InputBounds.check(config.sample_rate, 0...1000, field: "config.sample_rate")
      try InputBounds.check(config.duration, InputBounds.waitSeconds, field: "config.duration")
      // At most 3,600,000 samples (1,000 a second for an hour), and sensors that fit beside them.
      let samples = Int((config.sample_rate * config.duration).rounded())
      let sensors = config.sensors
      let (readings, overflow) = samples.multipliedReportingOverflow(by: sensors.count)
      guard !overflow else {
        throw InputBoundsError(field: "config.sensors", value: "\(sensors.count) sensors", range: "fewer")
      }
      return paced(readings, interval: config.sample_rate > 0 ? 1 / config.sample_rate / Double(max(1, sensors.count)) : 0) { i in
        let sample = i / max(1, sensors.count)
        let sensor = sensors[i % max(1, sensors.count)]
        return SensorReading(sample: sample, sensor: sensor, value: reading(sensor, sample))
      }
    }
    node.registerStream("async_ml_inference_stream", description: "Classifies images in batches", parameters: ["images", "batch_size"]) {
      (images: [String], batchSize: Int) in
      let size = max(1, batchSize)
      let batches = stride(from: 0, to: images.count, by: size).map { Array(images[$0..<min($0 + size, images.count)]) }
      return paced(batches.count, interval: 0.01) { i in
        InferenceBatch(batch: i, predictions: batches[i].map(classify))
      }
    }
    node.registerStream("async_complex_pipeline", description: "A multi-stage pipeline", parameters: ["data_source", "config"]) {
      (source: String, config: PipelineConfig) in
      try InputBounds.check(config.stage_delay, InputBounds.waitSeconds, field: "config.stage_delay")
      let (product, overflow) = config.stages.multipliedReportingOverflow(by: config.items_per_stage)
      guard !overflow else {
        throw InputBoundsError(
          field: "config.items_per_stage", value: "\(config.stages) × \(config.items_per_stage)", range: "a product below \(Int.max)")
      }
      let total = max(0, product)
      return paced(total, interval: config.stage_delay / Double(max(1, config.items_per_stage))) { i in
        PipelineItem(
          stage: i / max(1, config.items_per_stage), item: i % max(1, config.items_per_stage), source: source,
          progress: Double(i + 1) / Double(max(1, total)))
      }
    }
    node.register("echo", description: "Returns its argument", parameters: ["value"], idempotent: true) {
      (value: JSONValue) in value
    }
  }

  // MARK: - The computations, also used by clients to check results

  public static func summary(_ data: [Double]) -> DataSummary {
    DataSummary(
      count: data.count, sum: data.reduce(0, +), mean: data.isEmpty ? 0 : data.reduce(0, +) / Double(data.count),
      min: data.min() ?? 0, max: data.max() ?? 0)
  }

  public static func analyse(_ text: String, modelDelay: Double) -> AIResult {
    let positive = ["good", "great", "love", "happy", "excellent", "fast"]
    let negative = ["bad", "sad", "hate", "slow", "terrible", "broken"]
    let words = text.lowercased().split { !$0.isLetter }.map(String.init)
    let score = words.filter(positive.contains).count - words.filter(negative.contains).count
    let sentiment = score > 0 ? "positive" : score < 0 ? "negative" : "neutral"
    return AIResult(
      text: text, tokens: words.count, sentiment: sentiment,
      confidence: min(0.99, 0.5 + 0.1 * Double(abs(score))), modelDelay: modelDelay)
  }

  public static func reading(_ sensor: String, _ sample: Int) -> Double {
    let base: Double =
      switch sensor {
      case "temperature": 21.5
      case "humidity": 45
      case "pressure": 1013.25
      default: 1
      }
    return base + Double((sample * 7) % 10) / 10
  }

  public static func classify(_ image: String) -> InferenceBatch.Prediction {
    let labels = ["cat", "dog", "bird", "car"]
    let hash = image.unicodeScalars.reduce(0) { ($0 * 31 + Int($1.value)) % 10_007 }
    return .init(image: image, label: labels[hash % labels.count], confidence: 0.6 + Double(hash % 40) / 100)
  }

  /// Sleeps `seconds`, a checked (finite, bounded) delay.
  static func pause(_ seconds: Double) async throws {
    try await Task.sleep(for: .milliseconds(Int64(InputBounds.clamp(seconds, InputBounds.waitSeconds) * 1000)))
  }

  /// `count` items made by `make`, one every `interval` seconds, produced only as they are read.
  static func paced<Item: Sendable>(
    _ count: Int, interval: Double, _ make: @escaping @Sendable (Int) -> Item
  ) -> AsyncThrowingStream<Item, any Error> {
    let next = Mutex(0)
    return AsyncThrowingStream {
      let index = next.withLock { value in
        defer { value += 1 }
        return value
      }
      guard index < count else { return nil }
      if interval > 0, index > 0 { try await pause(interval) }
      return make(index)
    }
  }
}
