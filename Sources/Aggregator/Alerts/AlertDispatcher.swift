import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import RegwatchShared
import ServiceLifecycle

/// Delivers outage notifications to the configured webhooks, in order per webhook, retrying a failing
/// receiver with exponential backoff. Evaluation only enqueues (never waits); the queue is bounded and
/// drops the oldest notification when a receiver has been down for very long (counted, logged).
public final class AlertDispatcher: Service, Sendable {
    public struct Notification: Sendable, Equatable {
        public enum Event: String, Sendable { case opened, closed }
        public var event: Event
        public var outage: OutageRow
    }

    let webhooks: [AggregatorConfig.Webhook]
    let generatorURL: String
    let logger: Logger
    let maxAttempts: Int
    let initialBackoff: Duration
    private let streams: [(AsyncStream<Notification>, AsyncStream<Notification>.Continuation)]

    public init(webhooks: [AggregatorConfig.Webhook], generatorURL: String, logger: Logger, queue: Int = 1000,
                maxAttempts: Int = 10, initialBackoff: Duration = .seconds(1)) {
        self.webhooks = webhooks
        self.generatorURL = generatorURL
        self.logger = logger
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        streams = webhooks.map { _ in AsyncStream<Notification>.makeStream(bufferingPolicy: .bufferingNewest(queue)) }
    }

    /// - Parameter reminder: a repeat of a still-open outage, sent only to Alertmanager receivers (which
    ///   resolve an alert not re-sent within their `resolve_timeout`), never to plain JSON receivers.
    public func enqueue(_ n: Notification, reminder: Bool = false) {
        for (i, (_, c)) in streams.enumerated() where !reminder || webhooks[i].format == .alertmanager {
            if case .dropped = c.yield(n) {
                logger.error("alert queue full: dropped the oldest notification", metadata: ["webhook": "\(webhooks[i].url)"])
            }
        }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for (i, hook) in webhooks.enumerated() {
                let stream = streams[i].0
                group.addTask {
                    for await n in stream.cancelOnGracefulShutdown() { await self.deliver(n, to: hook) }
                }
            }
            if webhooks.isEmpty { try? await gracefulShutdown() }
            await group.waitForAll()
        }
    }

    func deliver(_ n: Notification, to hook: AggregatorConfig.Webhook) async {
        guard let url = URL(string: hook.url), let body = try? Self.body(n, format: hook.format, generatorURL: generatorURL) else { return }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body
        var delay = initialBackoff
        for attempt in 1...maxAttempts {
            let (status, error) = await Self.post(request)
            if let error {
                logger.warning("alert receiver unreachable", metadata: ["webhook": "\(hook.url)", "error": "\(error.localizedDescription)", "attempt": "\(attempt)"])
            } else if let status, (200..<300).contains(status) {
                logger.info("alert delivered", metadata: ["webhook": "\(hook.url)", "event": "\(n.event.rawValue)", "outage.id": "\(n.outage.id)"])
                return
            } else {
                logger.warning("alert receiver refused", metadata: ["webhook": "\(hook.url)", "status": "\(status ?? 0)", "attempt": "\(attempt)"])
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(300))
        }
        logger.error("alert not delivered; giving up", metadata: ["webhook": "\(hook.url)", "outage.id": "\(n.outage.id)"])
    }

    /// One POST. Not URLSession's async `data(for:)`: it cancels its URLSessionTask from inside the Swift
    /// task's cancellation, which in Linux's FoundationNetworking can deadlock with the session resuming
    /// that same task (a test that cancelled the dispatcher mid-request hung for good). The completion
    /// handler has no cancellation hook: a cancelled delivery ends with its request, within its timeout.
    static func post(_ request: URLRequest) async -> (status: Int?, error: (any Error)?) {
        await withCheckedContinuation { continuation in
            URLSession.shared.dataTask(with: request) { _, response, error in
                continuation.resume(returning: ((response as? HTTPURLResponse)?.statusCode, error))
            }.resume()
        }
    }

    /// The request body: Alertmanager's `/api/v2/alerts` array, or regwatch's own `{event, outage}`.
    static func body(_ n: Notification, format: AggregatorConfig.Webhook.Format, generatorURL: String) throws -> Data {
        switch format {
        case .json:
            struct Body: Encodable { var event: String; var outage: OutageRow }
            return try JSONCoding.encoder().encode(Body(event: n.event.rawValue, outage: n.outage))
        case .alertmanager:
            let o = n.outage
            var labels = ["alertname": "RegwatchOutage", "kind": o.kind.rawValue, "severity": o.kind == .hostLocal || o.kind == .certExpiring ? "warning" : "critical"]
            for (k, v) in [("endpoint", o.endpoint), ("registry", o.registry), ("zone", o.zone), ("host", o.host), ("egress", o.egress), ("class", o.errorClass?.rawValue)] {
                if let v, !v.isEmpty { labels[k] = v }
            }
            let scope = [o.endpoint, o.zone.map { "zone \($0)" }, o.host.map { "host \($0)" }, o.egress.map { "egress \($0)" }].compactMap { $0 }.joined(separator: ", ")
            let evidence = o.evidence.prefix(3).map { "\($0.host): \($0.errorClass.rawValue) \($0.detail)" }.joined(separator: "; ")
            var alert: [String: Any] = [
                "labels": labels,
                "annotations": [
                    "summary": "\(o.kind.rawValue) \(scope) (\(o.affectedHosts)/\(o.totalHosts) hosts)",
                    "description": evidence,
                    "outage_id": "\(o.id)",
                ],
                "startsAt": RFC3339.format(o.startedAt),
                "generatorURL": generatorURL,
            ]
            if let ended = o.endedAt { alert["endsAt"] = RFC3339.format(ended) }
            return try JSONSerialization.data(withJSONObject: [alert], options: [.sortedKeys])
        }
    }
}
