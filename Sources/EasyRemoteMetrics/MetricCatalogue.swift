import Prometheus

/// Every metric EasyRemote exposes: its name (Prometheus conventions: `easyremote_` prefix,
/// base units, `_total` counters), help text and, for histograms, buckets in seconds. The
/// names are the labels code passes to swift-metrics; README lists them.
public enum MetricCatalogue {
  struct Entry: Sendable {
    let help: String
    let buckets: [Double]?

    func descriptor(_ name: String) -> MetricNameDescriptor {
      MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
  }

  /// Buckets for calls: 100 µs (a routed call on one machine) to a minute.
  public static let callBuckets: [Double] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
  ]
  /// Buckets for tasks: 10 ms to an hour.
  public static let taskBuckets: [Double] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]
  /// Buckets for store commits: 50 µs to 5 s.
  public static let storeBuckets: [Double] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5]

  // The gateway (routed calls and streams, links).
  public static let calls = "easyremote_calls_total"
  public static let callDuration = "easyremote_call_duration_seconds"
  public static let callsInFlight = "easyremote_calls_in_flight"
  public static let callsWaiting = "easyremote_calls_waiting"
  public static let streamItems = "easyremote_stream_items_total"
  public static let payloadBytes = "easyremote_payload_bytes_total"
  public static let links = "easyremote_links"
  public static let nodeJoins = "easyremote_node_joins_total"
  public static let nodeLeaves = "easyremote_node_leaves_total"
  public static let nodes = "easyremote_nodes"
  // Each compute node's own figures, reported over its link.
  public static let nodeExecutions = "easyremote_node_executions_total"
  public static let nodeFailures = "easyremote_node_failures_total"
  public static let nodeExecutionSeconds = "easyremote_node_execution_seconds_total"
  public static let nodeLoad = "easyremote_node_load_ratio"
  public static let nodeWorkersBusy = "easyremote_node_workers_busy"
  public static let nodeWorkers = "easyremote_node_workers"
  // The task center.
  public static let tasks = "easyremote_tasks"
  public static let tasksSubmitted = "easyremote_tasks_submitted_total"
  public static let tasksFinished = "easyremote_tasks_finished_total"
  public static let taskQueueWait = "easyremote_task_queue_wait_seconds"
  public static let taskRun = "easyremote_task_run_seconds"
  public static let taskAttempts = "easyremote_task_attempts_total"
  public static let taskRequeues = "easyremote_task_requeues_total"
  public static let storeCommit = "easyremote_store_commit_seconds"
  // The HTTP API.
  public static let httpRequests = "easyremote_http_requests_total"
  public static let httpDuration = "easyremote_http_request_duration_seconds"
  public static let webSocketSubscribers = "easyremote_websocket_subscribers"
  // The door (links and HTTP alike).
  public static let authFailures = "easyremote_auth_failures_total"
  // The node layer's metrics interceptor (any node).
  public static let linkCalls = "easyremote_node_calls_total"
  public static let linkCallDuration = "easyremote_node_call_duration_seconds"
  public static let linkCallsInFlight = "easyremote_node_calls_in_flight"

  /// Every name in the catalogue.
  public static var names: [String] { entries.keys.sorted() }

  static let entries: [String: Entry] = [
    calls: Entry(help: "Calls routed by the gateway, by function, node and outcome (ok or the error code).", buckets: nil),
    callDuration: Entry(help: "Time from a routed call's arrival at the gateway to its answer, by function.", buckets: callBuckets),
    callsInFlight: Entry(help: "Calls and streams the gateway is routing now.", buckets: nil),
    callsWaiting: Entry(help: "Calls waiting for one of the gateway's maxWorkers places.", buckets: nil),
    streamItems: Entry(help: "Stream items the gateway passed on, by function.", buckets: nil),
    payloadBytes: Entry(help: "Payload bytes of routed calls and streams, by direction (in: arguments, out: results and items).", buckets: nil),
    links: Entry(help: "Links the gateway has open (compute nodes and clients).", buckets: nil),
    nodeJoins: Entry(help: "Compute nodes that joined, by kind (first: a node not seen before, reconnect: one that was here before).", buckets: nil),
    nodeLeaves: Entry(help: "Compute nodes that left, by reason (heartbeat_lost, closed, failed, stopped).", buckets: nil),
    nodes: Entry(help: "Compute nodes by status, as the scheduler sees them (idle, busy, overloaded, offline).", buckets: nil),
    nodeExecutions: Entry(help: "Calls and tasks a compute node ran, as it reports them over its link.", buckets: nil),
    nodeFailures: Entry(help: "Calls and tasks that failed on a compute node, as it reports them.", buckets: nil),
    nodeExecutionSeconds: Entry(help: "Seconds a compute node spent running calls and tasks, as it reports them.", buckets: nil),
    nodeLoad: Entry(help: "A compute node's machine load (0 to 1), by resource (cpu, memory).", buckets: nil),
    nodeWorkersBusy: Entry(help: "A compute node's worker slots in use.", buckets: nil),
    nodeWorkers: Entry(help: "A compute node's worker slots (maxWorkers).", buckets: nil),
    tasks: Entry(help: "Tasks in the task store, by status.", buckets: nil),
    tasksSubmitted: Entry(help: "Tasks submitted, by kind (code, call).", buckets: nil),
    tasksFinished: Entry(help: "Tasks that reached a final status, by kind and status.", buckets: nil),
    taskQueueWait: Entry(help: "Time tasks waited in the queue before they started, by kind.", buckets: taskBuckets),
    taskRun: Entry(help: "Time tasks ran, from start to result, by kind and status.", buckets: taskBuckets),
    taskAttempts: Entry(help: "Task attempts started, by kind (a requeued task starts again).", buckets: nil),
    taskRequeues: Entry(help: "Running tasks sent back to the queue (their node left, stopped or failed them).", buckets: nil),
    storeCommit: Entry(help: "Time the task store took to commit a write, by operation.", buckets: storeBuckets),
    httpRequests: Entry(help: "HTTP API requests, by route, method and status.", buckets: nil),
    httpDuration: Entry(help: "Time the HTTP API took to answer, by route and method.", buckets: callBuckets),
    webSocketSubscribers: Entry(help: "WebSocket subscribers of /ws/updates.", buckets: nil),
    authFailures: Entry(help: "Requests with a wrong or missing token, by transport (http, link) and outcome (refused: 401/auth_failed; limited: the address made too many).", buckets: nil),
    linkCalls: Entry(help: "Node-layer calls through the metrics interceptor, by node, direction, method and outcome.", buckets: nil),
    linkCallDuration: Entry(help: "Duration of node-layer calls through the metrics interceptor, by node, direction and method.", buckets: callBuckets),
    linkCallsInFlight: Entry(help: "Node-layer calls in flight through the metrics interceptor.", buckets: nil),
  ]
}
