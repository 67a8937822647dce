import EasyRemoteMetrics
import Hummingbird

/// Counts and times HTTP requests by route (the pattern, `/tasks/{id}`: a bounded set;
/// `unmatched` for paths no route serves), method and status.
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
  let instruments: Instruments

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    let start = ContinuousClock.now
    do {
      let response = try await next(request, context)
      count(request, route: context.endpointPath, status: response.status.code, start: start)
      return response
    } catch {
      let status = (error as? any HTTPResponseError)?.status.code ?? 500
      count(request, route: context.endpointPath, status: status, start: start)
      throw error
    }
  }

  private func count(_ request: Request, route: String?, status: Int, start: ContinuousClock.Instant) {
    let route = route ?? "unmatched"
    let method = request.method.rawValue
    instruments.counter(MetricCatalogue.httpRequests, ["route": route, "method": method, "status": String(status)]).increment()
    instruments.record(MetricCatalogue.httpDuration, ["route": route, "method": method], since: start)
  }
}
