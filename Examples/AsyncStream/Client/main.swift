// The client of the async & streaming example: calls every function, prints and checks each
// result, exits 1 if any is wrong. Terminal 3:
//   swift run async-stream-client [gateway host:port]
import EasyRemote
import ExampleFunctions
import Foundation

let gateway = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:8080"
let client = Client(serverAddress: gateway, timeout: .seconds(30))
var failures = 0

@MainActor func check(_ name: String, _ ok: Bool, _ detail: String) {
  print("\(ok ? "ok  " : "FAIL") \(name): \(detail)")
  if !ok { failures += 1 }
}

// Wait until the node has joined (it may start after us).
for _ in 0..<100 {
  if let info = try? await client.functionInfo("async_complex_pipeline"), !info.nodes.isEmpty { break }
  try await Task.sleep(for: .milliseconds(100))
}

let sum: Double = try await client.execute("sync_add", 10, 20)
check("sync_add(10, 20)", sum == 30, "\(sum)")

let summary: SeedExamples.DataSummary = try await client.execute("sync_process_data", [3.0, 1, 4, 1, 5])
check("sync_process_data", summary == SeedExamples.summary([3, 1, 4, 1, 5]), "mean \(summary.mean), max \(summary.max)")

let started = ContinuousClock.now
async let first: SeedExamples.Computation = client.execute("async_computation", [1.0, 2, 3, 4, 5], 0.5)
async let second: SeedExamples.AIResult = client.execute("async_ai_simulation", "EasyRemote streams are great", 0.5)
let (computation, ai) = try await (first, second)
let together = ContinuousClock.now - started
check("async_computation", computation.total == 55, "squares \(computation.squares)")
check("async_ai_simulation", ai.sentiment == "positive", "\(ai.sentiment), \(ai.tokens) tokens")
check("both async calls ran concurrently", together < .milliseconds(950), "\(together)")

var numbers: [Int] = []
for try await item in try await client.stream("sync_number_stream", 1, 5, 0.1, as: SeedExamples.NumberItem.self) {
  print("     item \(item.index): \(item.value)")
  numbers.append(item.value)
}
check("sync_number_stream(1, 5, 0.1)", numbers == [1, 2, 3, 4, 5], "\(numbers)")

let sensors = SeedExamples.SensorConfig(sensors: ["temperature", "humidity", "pressure"], sample_rate: 2, duration: 2)
var readings = 0
for try await reading in try await client.stream("async_data_stream", sensors, as: SeedExamples.SensorReading.self) {
  print("     sample \(reading.sample) \(reading.sensor) = \(reading.value)")
  readings += reading.value == SeedExamples.reading(reading.sensor, reading.sample) ? 1 : 0
}
check("async_data_stream", readings == 12, "\(readings) correct readings")

let images = (1...6).map { String(format: "image_%03d.jpg", $0) }
var predictions: [SeedExamples.InferenceBatch.Prediction] = []
for try await batch in try await client.stream("async_ml_inference_stream", images, 2, as: SeedExamples.InferenceBatch.self) {
  print("     batch \(batch.batch): \(batch.predictions.map { "\($0.image)→\($0.label)" }.joined(separator: ", "))")
  predictions += batch.predictions
}
check("async_ml_inference_stream", predictions == images.map(SeedExamples.classify), "\(predictions.count) predictions")

let pipeline = SeedExamples.PipelineConfig(stages: 3, items_per_stage: 5, stage_delay: 0.3)
var last: SeedExamples.PipelineItem?
var items = 0
for try await item in try await client.stream("async_complex_pipeline", "sensor-db", pipeline, as: SeedExamples.PipelineItem.self) {
  items += 1
  last = item
}
check("async_complex_pipeline", items == 15 && last?.progress == 1, "\(items) items, last at stage \(last?.stage ?? -1)")

await client.close()
print(failures == 0 ? "all example results are correct" : "\(failures) example result(s) wrong")
exit(failures == 0 ? 0 : 1)
