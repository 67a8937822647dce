import Synchronization

/// Group commit for PostgreSQL: changes of one kind that arrive while a statement for earlier
/// ones is on its way go together in the next statement — one round trip and one commit (one
/// WAL flush) for the batch instead of one each. The first caller of an idle batcher sends its
/// change at once; those arriving meanwhile wait for it and then go together.
///
/// `run` gets the items in order and answers each, by position. When it throws for a batch of
/// several, each item is tried alone with `single`, so one bad item fails only its caller.
/// (Every caller of one batcher passes the same two; the one that finds it idle drives it.)
final class PostgresBatcher<Item: Sendable, Answer: Sendable>: Sendable {
  private typealias Waiting = (item: Item, continuation: CheckedContinuation<Answer, any Error>)

  private let state = Mutex<(waiting: [Waiting], sending: Bool)>(([], false))
  private let limit: Int

  init(limit: Int) {
    self.limit = limit
  }

  func submit(
    _ item: Item, run: @escaping @Sendable ([Item]) async throws -> [Answer],
    single: @escaping @Sendable (Item) async throws -> Answer
  ) async throws -> Answer {
    try await withCheckedThrowingContinuation { continuation in
      let lead = state.withLock { state -> Bool in
        state.waiting.append((item, continuation))
        defer { state.sending = true }
        return !state.sending
      }
      // Unstructured: the sender serves every waiting caller's item (each awaits its own
      // answer) and ends when none is left; no caller should lead the others' writes.
      if lead { Task { await self.drain(run: run, single: single) } }
    }
  }

  private func drain(
    run: @Sendable ([Item]) async throws -> [Answer], single: @escaping @Sendable (Item) async throws -> Answer
  ) async {
    while true {
      let batch = state.withLock { state -> [Waiting] in
        guard !state.waiting.isEmpty else {
          state.sending = false
          return []
        }
        let batch = Array(state.waiting.prefix(limit))
        state.waiting.removeFirst(batch.count)
        return batch
      }
      guard !batch.isEmpty else { return }
      do {
        let answers = try await run(batch.map(\.item))
        for (index, waiting) in batch.enumerated() { waiting.continuation.resume(returning: answers[index]) }
      } catch where batch.count > 1 {
        await withTaskGroup(of: Void.self) { group in
          for waiting in batch {
            group.addTask {
              do {
                waiting.continuation.resume(returning: try await single(waiting.item))
              } catch {
                waiting.continuation.resume(throwing: error)
              }
            }
          }
        }
      } catch {
        batch[0].continuation.resume(throwing: error)
      }
    }
  }
}
