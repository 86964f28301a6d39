import Foundation
import GRDB
import RegwatchShared

/// Read side: what the HTTP API, the CLI and correlation ask. Each query runs on one reader snapshot,
/// so it never mixes two ingest batches; staleness is decided against the `now` passed in, which keeps
/// the answers reproducible in tests (manual clock) and consistent within one evaluation.
extension FleetStore {
    /// Every host, ordered by id, with its status (see `HostRow.Status`). `staleAfter` is in intervals
    /// of each host's own `intervalSeconds` (config `correlation.staleAfter`).
    public func hosts(now: Date, staleAfter: Int) throws(StoreError) -> [HostRow] {
        let t = now.unixSeconds
        return try read { db in
            let decoder = JSONDecoder()
            let rows = try Row.fetchCursor(db, sql: """
                SELECT h.id, h.labels, h.lastSeen, h.firstSeen, h.appliedGeneration, h.agentVersion, h.intervalSeconds, h.connected,
                       h.eventSources,
                       EXISTS (SELECT 1 FROM endpoint_state e WHERE e.hostId = h.id AND e.class <> 'ok')
                       OR EXISTS (SELECT 1 FROM runtime_state r WHERE r.hostId = h.id AND r.valid = 0)
                FROM host h ORDER BY h.id
                """)
            var out: [HostRow] = []
            while let row = try rows.next() {
                let lastSeen: Double = row[2]
                let interval: Double = row[6]
                let connected: Bool = row[7]
                out.append(HostRow(
                    id: row[0], labels: StoreJSON.decode([String: String].self, row[1], default: [:], decoder: decoder),
                    lastSeen: Date(unixSeconds: lastSeen), firstSeen: Date(unixSeconds: row[3]),
                    appliedGeneration: UInt64(bitPattern: row[4]), agentVersion: row[5], intervalSeconds: interval,
                    connected: connected,
                    eventSources: StoreJSON.decode([EventSourceStatus].self, row[8], default: [], decoder: decoder),
                    status: HostRow.status(now: t, lastSeen: lastSeen, intervalSeconds: interval, staleAfter: staleAfter,
                                           connected: connected, problems: row[9])))
            }
            return out
        }
    }

    /// Every endpoint known from latest states, ordered by registry, role (upstream first), endpoint.
    /// Counts, classes, quantiles and quota consider non-stale hosts only; an endpoint only stale hosts
    /// know is still listed, with zero hosts reporting, so it does not silently vanish.
    public func endpoints(now: Date, staleAfter: Int) throws(StoreError) -> [EndpointRow] {
        struct Key: Hashable {
            var registry: String
            var endpoint: String
        }
        struct Acc {
            var role: Endpoint.Role
            var reporting = 0
            var failing = 0
            var classes: [String: Int] = [:]
            var latencies: [Double] = []
            var lowestRemaining: Int?
        }
        let t = now.unixSeconds
        let acc = try read { db in
            var acc: [Key: Acc] = [:]
            let rows = try Row.fetchCursor(db, sql: """
                SELECT e.registry, e.endpoint, e.role, e.class, e.totalMs, e.rateLimitRemaining, h.lastSeen, h.intervalSeconds
                FROM endpoint_state e JOIN host h ON h.id = e.hostId
                """)
            while let row = try rows.next() {
                let key = Key(registry: row[0], endpoint: row[1])
                var a = acc[key] ?? Acc(role: Endpoint.Role(rawValue: row[2]) ?? .mirror)
                if !HostRow.isStale(now: t, lastSeen: row[6], intervalSeconds: row[7], staleAfter: staleAfter) {
                    a.reporting += 1
                    let cls: String = row[3]
                    if cls != ErrorClass.ok.rawValue {
                        a.failing += 1
                        a.classes[cls, default: 0] += 1
                    }
                    if let ms: Double = row[4] { a.latencies.append(ms) }
                    if let remaining: Int = row[5] { a.lowestRemaining = min(a.lowestRemaining ?? remaining, remaining) }
                }
                acc[key] = a
            }
            return acc
        }
        return acc.map { key, a in
            let sorted = a.latencies.sorted()
            let dominant = a.classes.max { l, r in l.value != r.value ? l.value < r.value : l.key > r.key }?.key
            return EndpointRow(
                endpoint: key.endpoint, registry: key.registry, role: a.role, hostsReporting: a.reporting, hostsFailing: a.failing,
                errorClass: dominant.map { ErrorClass(rawValue: $0) ?? .unknown } ?? .ok,
                p50Ms: EndpointRow.quantile(0.5, ofSorted: sorted), p95Ms: EndpointRow.quantile(0.95, ofSorted: sorted),
                lowestRateLimitRemaining: a.lowestRemaining)
        }.sorted { l, r in
            if l.registry != r.registry { return l.registry < r.registry }
            if l.role != r.role { return l.role == .upstream }
            return l.endpoint < r.endpoint
        }
    }

    /// Every host x endpoint latest state with the host's labels and a `stale` flag, ordered by host,
    /// registry, endpoint: the snapshot correlation evaluates each window.
    public func latestStates(now: Date, staleAfter: Int) throws(StoreError) -> [LatestStateRow] {
        let t = now.unixSeconds
        return try read { db in
            let decoder = JSONDecoder()
            var labelsByHost: [String: [String: String]] = [:]
            // Hosts share a handful of distinct label sets: each distinct text is decoded once.
            var labelsByText: [String: [String: String]] = [:]
            let rows = try Row.fetchCursor(db, sql: """
                SELECT e.hostId, h.labels, h.lastSeen, h.intervalSeconds,
                       e.registry, e.endpoint, e.role, e.class, e.detail,
                       e.dnsMs, e.connectMs, e.tlsMs, e.ttfbMs, e.totalMs,
                       e.tlsTrusted, e.tlsDaysLeft, e.tlsExpiresAt,
                       e.rateLimitLimit, e.rateLimitRemaining, e.rateLimitWindowSeconds, e.rateLimitSource,
                       e.manifestReference, e.manifestStatus, e.manifestDigest, e.checkedAt, e.observedAt, e.classSince
                FROM endpoint_state e JOIN host h ON h.id = e.hostId
                ORDER BY e.hostId, e.registry, e.endpoint
                """)
            var out: [LatestStateRow] = []
            while let row = try rows.next() {
                let host: String = row[0]
                let labels: [String: String]
                if let cached = labelsByHost[host] {
                    labels = cached
                } else {
                    let text: String = row[1]
                    labels = labelsByText[text] ?? StoreJSON.decode([String: String].self, text, default: [:], decoder: decoder)
                    labelsByText[text] = labels
                    labelsByHost[host] = labels
                }
                let lastSeen: Double = row[2]
                let tls: TLSState? = (row[14] as Bool?).map { trusted in
                    TLSState(trusted: trusted, daysLeft: row[15], expiresAt: (row[16] as Double?).map(Date.init(unixSeconds:)))
                }
                var rateLimit: RateLimitState?
                if let limit: Int = row[17], let remaining: Int = row[18], let window: Int = row[19] {
                    rateLimit = RateLimitState(limit: limit, remaining: remaining, windowSeconds: window, source: row[20])
                }
                let manifest: ManifestState? = (row[21] as String?).map { ManifestState(reference: $0, status: row[22], digest: row[23]) }
                let probe = ProbeResult(
                    endpoint: Endpoint(registry: row[4], url: row[5], role: Endpoint.Role(rawValue: row[6]) ?? .mirror),
                    errorClass: ErrorClass(rawValue: row[7]) ?? .unknown, detail: row[8],
                    phases: PhaseTimings(dnsMs: row[9], connectMs: row[10], tlsMs: row[11], ttfbMs: row[12], totalMs: row[13]),
                    tls: tls, rateLimit: rateLimit, manifest: manifest, checkedAt: Date(unixSeconds: row[24]))
                out.append(LatestStateRow(
                    hostID: host, labels: labels, probe: probe, observedAt: Date(unixSeconds: row[25]),
                    hostLastSeen: Date(unixSeconds: lastSeen),
                    stale: HostRow.isStale(now: t, lastSeen: lastSeen, intervalSeconds: row[3], staleAfter: staleAfter),
                    classSince: (row[26] as Double?).map(Date.init(unixSeconds:))))
            }
            return out
        }
    }

    /// Rolled-up probe minutes in `[since, until)`, optionally for one endpoint URL, ordered by
    /// registry, endpoint, minute.
    public func probeMinutes(since: Date, until: Date? = nil, endpoint: String? = nil) throws(StoreError) -> [ProbeMinuteRow] {
        let from = since.unixSeconds
        let to = until?.unixSeconds ?? .infinity
        return try read { db in
            let decoder = JSONDecoder()
            var sql = """
                SELECT registry, endpoint, minute, samples, failures, failureClasses, timedSamples, sumMs, minMs, maxMs, buckets
                FROM probe_minute WHERE minute >= ? AND minute < ?
                """
            var arguments: StatementArguments = [from, to]
            if let endpoint {
                sql += " AND endpoint = ?"
                arguments += [endpoint]
            }
            sql += " ORDER BY registry, endpoint, minute"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let timed: Int = row[6]
                let sum: Double = row[7]
                let minMs: Double? = row[8]
                let maxMs: Double? = row[9]
                let histogram = LatencyHistogram(json: row[10])
                // A bucket's middle may lie outside what was measured; the true quantile cannot.
                let clamp = { (v: Double?) in v.map { Swift.min(Swift.max($0, minMs ?? $0), maxMs ?? $0) } }
                return ProbeMinuteRow(
                    registry: row[0], endpoint: row[1], minute: Date(unixSeconds: row[2]), samples: row[3], failures: row[4],
                    failureClasses: StoreJSON.decode([String: Int].self, row[5], default: [:], decoder: decoder),
                    timedSamples: timed, meanMs: timed > 0 ? sum / Double(timed) : nil, minMs: minMs, maxMs: maxMs,
                    p50Ms: clamp(histogram.quantileMs(0.5)), p95Ms: clamp(histogram.quantileMs(0.95)))
            }
        }
    }

    /// Counts and sizes for `regwatch-aggregator status`.
    public func status(now: Date, staleAfter: Int) throws(StoreError) -> StoreStatus {
        let t = now.unixSeconds
        let walAttributes = try? FileManager.default.attributesOfItem(atPath: path + "-wal")
        let walBytes = (walAttributes?[.size] as? NSNumber)?.int64Value ?? 0
        return try read { db in
            func count(_ sql: String, _ arguments: StatementArguments = []) throws -> Int {
                try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0
            }
            let applied = try StoreSchema.migrator.appliedMigrations(db)
            let pageCount = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            return StoreStatus(
                path: path, schemaVersion: applied.last ?? "none",
                hosts: try count("SELECT COUNT(*) FROM host"),
                hostsStale: try count("SELECT COUNT(*) FROM host WHERE ? - lastSeen > ? * intervalSeconds", [t, Double(staleAfter)]),
                hostsConnected: try count("SELECT COUNT(*) FROM host WHERE connected <> 0"),
                endpointStates: try count("SELECT COUNT(*) FROM endpoint_state"),
                probeSamples: try count("SELECT COUNT(*) FROM probe_sample"),
                probeMinutes: try count("SELECT COUNT(*) FROM probe_minute"),
                pullEvents: try count("SELECT COUNT(*) FROM pull_event"),
                activeOutages: try count("SELECT COUNT(*) FROM outage WHERE endedAt IS NULL"),
                databaseBytes: pageCount * pageSize, walBytes: walBytes)
        }
    }
}
