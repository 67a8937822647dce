import EasyRemote
import ExampleFunctions
import Foundation
import Testing

/// Every seed 002 example function through a real gateway.
@Suite("Seed 002 examples", .timeLimit(.minutes(2)))
struct SeedExampleTests {
  @Test("each example function answers as documented")
  func examples() async throws {
    var fabric = try await Fabric.start()
    _ = try await fabric.addNode("examples") { SeedExamples.register(on: $0) }
    let client = fabric.client()

    let sum: Double = try await client.execute("sync_add", 2, 3.5)
    #expect(sum == 5.5)
    let summary: SeedExamples.DataSummary = try await client.execute("sync_process_data", [4.0, 1, 7])
    #expect(summary == SeedExamples.DataSummary(count: 3, sum: 12, mean: 4, min: 1, max: 7))
    let computed: SeedExamples.Computation = try await client.execute("async_computation", [1.0, 2, 3], 0.05)
    #expect(computed.squares == [1, 4, 9])
    #expect(computed.total == 14)
    let ai: SeedExamples.AIResult = try await client.execute("async_ai_simulation", "I love this great demo", 0.05)
    #expect(ai.sentiment == "positive")
    #expect(ai.tokens == 5)

    var numbers: [Int] = []
    for try await item in try await client.stream("sync_number_stream", 10, 5, 0.01, as: SeedExamples.NumberItem.self) {
      numbers.append(item.value)
    }
    #expect(numbers == [10, 11, 12, 13, 14])

    let sensors = SeedExamples.SensorConfig(sensors: ["temperature", "humidity"], sample_rate: 10, duration: 0.5)
    var readings: [SeedExamples.SensorReading] = []
    for try await reading in try await client.stream("async_data_stream", sensors, as: SeedExamples.SensorReading.self) {
      readings.append(reading)
    }
    #expect(readings.count == 10)
    #expect(readings.first == SeedExamples.SensorReading(sample: 0, sensor: "temperature", value: 21.5))
    #expect(Set(readings.map(\.sensor)) == ["temperature", "humidity"])

    let images = (1...5).map { "image_\($0).jpg" }
    var batches: [SeedExamples.InferenceBatch] = []
    for try await batch in try await client.stream("async_ml_inference_stream", images, 2, as: SeedExamples.InferenceBatch.self) {
      batches.append(batch)
    }
    #expect(batches.map { $0.predictions.count } == [2, 2, 1])
    #expect(batches.flatMap { $0.predictions.map(\.image) } == images)
    #expect(batches[0].predictions[0] == SeedExamples.classify("image_1.jpg"))

    let pipeline = SeedExamples.PipelineConfig(stages: 3, items_per_stage: 2, stage_delay: 0.02)
    var stages: [SeedExamples.PipelineItem] = []
    for try await item in try await client.stream("async_complex_pipeline", "sensors-db", pipeline, as: SeedExamples.PipelineItem.self) {
      stages.append(item)
    }
    #expect(stages.count == 6)
    #expect(stages.map(\.stage) == [0, 0, 1, 1, 2, 2])
    #expect(stages.last?.progress == 1)
    #expect(stages.allSatisfy { $0.source == "sensors-db" })

    let echoed: JSONValue = try await client.execute("echo", JSONValue.object(["a": .array([.int(1), .null])]))
    #expect(echoed == .object(["a": .array([.int(1), .null])]))
    await client.close()
    await fabric.stop()
  }
}
