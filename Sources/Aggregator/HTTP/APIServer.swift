import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RegwatchShared

/// The aggregator's HTTP API (contract: docs/api.md): health, Prometheus metrics, fleet state as JSON, the
/// failover controls and the dashboard (`GET /`).
///
/// Read routes are open on the bound address (loopback by default); mutating routes check the bearer
/// token (``APIToken``) themselves. JSON uses RFC 3339 UTC times; see docs/api.md for absent values.
public enum APIServer {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        /// Hosts silent for this many of their intervals are `stale`.
        public var staleAfter: Int
        /// Renders the metrics registry as Prometheus text (the executable owns the backend).
        public var metricsText: @Sendable () -> String
        /// The failover service (its live plans and freeze/thaw); nil: failover routes answer 503.
        public var failover: FailoverService?
        /// The bearer token mutating calls must present; nil: mutating calls are refused.
        public var apiToken: APIToken?
        /// This aggregator's role, shown by `/healthz` (`Regwatch-Role`, `Regwatch-Leader-Epoch` headers).
        public var leadership: Leadership?

        public init(
            host: String, port: Int, staleAfter: Int, metricsText: @escaping @Sendable () -> String,
            failover: FailoverService? = nil, apiToken: APIToken? = nil, leadership: Leadership? = nil
        ) {
            self.leadership = leadership
            self.host = host
            self.port = port
            self.staleAfter = staleAfter
            self.metricsText = metricsText
            self.failover = failover
            self.apiToken = apiToken
        }
    }

    /// A handler that calls the store runs on the store's threads (``StoreThreads``): a store call blocks
    /// until the database answers, and blocking the cooperative pool would stall every other task, down to
    /// `/metrics`, while the database is slow or cut off.
    static func blocking(_ body: @escaping @Sendable (Request, BasicRequestContext) throws -> Response)
        -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, context in try await StoreThreads.run(.api) { try body(request, context) } }
    }

    public static func makeApplication(store: any FleetStoring, options: Options, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz", use: Self.blocking { _, _ -> Response in
            var response: Response
            do {
                _ = try store.status(now: Date(), staleAfter: options.staleAfter)
                response = text("ok\n")
            } catch {
                response = text("database unavailable: \(error)\n", status: .serviceUnavailable)
            }
            if let term = options.leadership?.current {
                // Headers, so the body stays the "ok" checks compare against; on a 503 too, to say who leads.
                response.headers[Self.roleHeader] = term.isLeader ? "leader" : "follower"
                response.headers[Self.epochHeader] = "\(term.epoch)"
            }
            return response
        })
        router.get("/metrics") { _, _ -> Response in
            text(options.metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/api/v1/hosts", use: Self.blocking { _, _ -> Response in
            try json(store.hosts(now: Date(), staleAfter: options.staleAfter))
        })
        router.get("/api/v1/endpoints", use: Self.blocking { _, _ -> Response in
            try json(store.endpoints(now: Date(), staleAfter: options.staleAfter))
        })
        router.get("/api/v1/outages", use: Self.blocking { request, _ -> Response in
            let state = request.uri.queryParameters["state"].map(String.init) ?? "active"
            guard state == "active" || state == "all" else {
                return text("state must be active or all, got \"\(state.prefix(40))\"\n", status: .badRequest)
            }
            return try json(store.outages(activeOnly: state == "active"))
        })
        router.get("/", use: Self.blocking { _, _ -> Response in
            let now = Date()
            let since = now.addingTimeInterval(-DashboardHistory.window)
            let persisted = options.failover == nil ? try store.failoverState() : nil
            let page = DashboardPage(
                now: now, hosts: try store.hosts(now: now, staleAfter: options.staleAfter),
                endpoints: try store.endpoints(now: now, staleAfter: options.staleAfter),
                states: try store.latestStates(now: now, staleAfter: options.staleAfter),
                outages: try store.outages(activeOnly: true),
                failovers: options.failover?.plans ?? persisted.map { FailoverController(settings: .init(), state: $0).plans } ?? [],
                frozen: options.failover?.freezeState ?? persisted?.frozen,
                history: DashboardHistory(
                    since: since, outages: try store.outages(since: since), minutes: try store.probeMinutes(since: since),
                    headroom: try store.headroom(since: since)))
            return html(page.render())
        })
        router.get("/hosts/:id", use: Self.blocking { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let now = Date()
            guard let host = try store.hosts(now: now, staleAfter: options.staleAfter, id: id).first else {
                return html(HostPage.notFound(id), status: .notFound)
            }
            let persisted = options.failover == nil ? try store.failoverState() : nil
            let generation = options.failover?.generation ?? persisted?.generation ?? 0
            let page = HostPage(
                host: host, states: try store.latestStates(now: now, staleAfter: options.staleAfter, host: id),
                runtimes: try store.runtimeStates(host: id), pullFailures: try store.pullEvents(host: id, failuresOnly: true),
                outages: try store.outages(activeOnly: true), fleetGeneration: generation)
            return html(page.render())
        })
        router.get("/api/v1/failovers", use: Self.blocking { _, _ -> Response in
            if let failover = options.failover { return try json(failover.summaries) }
            return try json((try store.failoverState()).map { FailoverController(settings: .init(), state: $0).summaries } ?? [])
        })
        for action in ["freeze", "thaw"] {
            router.post("/api/v1/failovers/\(action)", use: Self.blocking { request, _ -> Response in
                guard let token = options.apiToken else {
                    return text("mutating calls are disabled: set apiToken in the aggregator config\n", status: .forbidden)
                }
                guard token.authorizes(request.headers[.authorization]) else {
                    return Response(status: .unauthorized, headers: [.contentType: "text/plain; charset=utf-8", .wwwAuthenticate: "Bearer"],
                                    body: .init(byteBuffer: ByteBuffer(string: "a valid bearer token is required\n")))
                }
                guard let failover = options.failover else { return text("failover is not running\n", status: .serviceUnavailable) }
                let reason = request.uri.queryParameters["reason"].map { String($0.prefix(200)) } ?? "frozen through the API"
                do {
                    if action == "freeze" { try failover.freeze(reason: reason) } else { try failover.thaw() }
                } catch let error as StoreError {
                    guard case .notLeader = error else { throw error }
                    return text("\(error)\n", status: .conflict)
                }
                return try json(FreezeAnswer(frozen: failover.isFrozen, generation: failover.generation))
            })
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "regwatch-aggregator"),
            onServerRunning: { channel in
                logger.notice("HTTP API listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger
        )
    }

    /// The answer of `POST /api/v1/failovers/freeze|thaw`.
    struct FreezeAnswer: Codable {
        var frozen: Bool
        var generation: UInt64
    }

    static let roleHeader = HTTPField.Name("Regwatch-Role")!
    static let epochHeader = HTTPField.Name("Regwatch-Leader-Epoch")!

    static func text(_ body: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A dashboard page with its Content-Security-Policy (only its own stylesheet) and no sniffing,
    /// framing or referrer.
    static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: HTMLDocument.contentSecurityPolicy]
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPFields.Element.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let data = try JSONCoding.encoder().encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Splits `host:port` (IPv6 as `[::1]:7451`).
    public static func parseAddress(_ address: String) -> (host: String, port: Int)? {
        var host: Substring
        let portText: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else { return nil }
            host = address[address.index(after: address.startIndex)..<close]
            portText = address[address.index(close, offsetBy: 2)...]
        } else {
            guard let colon = address.lastIndex(of: ":") else { return nil }
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        if host == "*" { host = "0.0.0.0" }
        return (String(host), port)
    }
}
