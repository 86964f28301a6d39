import Foundation
import GRDB
import RegwatchShared

/// Read side: what the HTTP API, the CLI and correlation ask. Each query runs on one reader snapshot,
/// so it never mixes two ingest batches; staleness is decided against the `now` passed in, which keeps
/// the answers reproducible in tests (manual clock) and consistent within one evaluation.
extension FleetStore {
    /// Every host, ordered by id, with its status (see `HostRow.Status`). `staleAfter` is in intervals
    /// of each host's own `intervalSeconds` (config `correlation.staleAfter`).
    /// With `id`, only that host (an empty list when it is unknown).
    public func hosts(now: Date, staleAfter: Int, id: String? = nil) throws(StoreError) -> [HostRow] {
        let t = now.unixSeconds
        return try read { db in
            let decoder = JSONDecoder()
            let rows = try Row.fetchCursor(db, sql: """
                SELECT h.id, h.labels, h.lastSeen, h.firstSeen, h.appliedGeneration, h.agentVersion, h.intervalSeconds, h.connected,
                       h.eventSources,
                       EXISTS (SELECT 1 FROM json_each(h.probes) p WHERE p.value ->> \(ProbeStateText.latestColumns.firstIndex(of: "class")!) <> 'ok')
                       OR EXISTS (SELECT 1 FROM runtime_state r WHERE r.hostId = h.id AND r.valid = 0),
                       h.spoolPending, h.spoolDropped
                FROM host h \(id == nil ? "" : "WHERE h.id = ?") ORDER BY h.id
                """, arguments: id.map { [$0] } ?? [])
            var out: [HostRow] = []
            while let row = try rows.next() {
                let lastSeen: Double = row[2]
                let interval: Double = row[6]
                let connected: Bool = row[7]
                let spoolPending: Int? = row[10], spoolDropped: Int? = row[11]
                out.append(HostRow(
                    id: row[0], labels: StoreJSON.decode([String: String].self, row[1], default: [:], decoder: decoder),
                    lastSeen: Date(unixSeconds: lastSeen), firstSeen: Date(unixSeconds: row[3]),
                    appliedGeneration: UInt64(bitPattern: row[4]), agentVersion: row[5], intervalSeconds: interval,
                    connected: connected,
                    eventSources: StoreJSON.decode([EventSourceStatus].self, row[8], default: [], decoder: decoder),
                    spool: spoolPending.map { SpoolStatus(pending: $0, dropped: spoolDropped ?? 0) },
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
            let rows = try Row.fetchCursor(db, sql: "SELECT probes, lastSeen, intervalSeconds FROM host")
            while let row = try rows.next() {
                let fresh = !HostRow.isStale(now: t, lastSeen: row[1], intervalSeconds: row[2], staleAfter: staleAfter)
                ProbeStateText.forEachLatest(row[0]) { probe, _ in
                    let key = Key(registry: probe.endpoint.registry, endpoint: probe.endpoint.url)
                    var a = acc[key] ?? Acc(role: probe.endpoint.role)
                    if fresh {
                        a.reporting += 1
                        if probe.errorClass != .ok {
                            a.failing += 1
                            a.classes[probe.errorClass.rawValue, default: 0] += 1
                        }
                        if let ms = probe.phases.totalMs { a.latencies.append(ms) }
                        if let remaining = probe.rateLimit?.remaining { a.lowestRemaining = min(a.lowestRemaining ?? remaining, remaining) }
                    }
                    acc[key] = a
                }
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
    /// With `host`, only that host's.
    public func latestStates(now: Date, staleAfter: Int, host hostID: String? = nil) throws(StoreError) -> [LatestStateRow] {
        let t = now.unixSeconds
        return try read { db in
            let decoder = JSONDecoder()
            // Hosts share a handful of distinct label sets: each distinct text is decoded once.
            var labelsByText: [String: [String: String]] = [:]
            // Elements are stored ordered by registry and endpoint, so host order is the whole order.
            let rows = try Row.fetchCursor(db, sql: """
                SELECT id, labels, lastSeen, intervalSeconds, probes, probesObservedAt FROM host \(hostID == nil ? "" : "WHERE id = ?") ORDER BY id
                """, arguments: hostID.map { [$0] } ?? [])
            var out: [LatestStateRow] = []
            while let row = try rows.next() {
                let host: String = row[0]
                let text: String = row[1]
                let labels = labelsByText[text] ?? StoreJSON.decode([String: String].self, text, default: [:], decoder: decoder)
                labelsByText[text] = labels
                let lastSeen: Double = row[2]
                let stale = HostRow.isStale(now: t, lastSeen: lastSeen, intervalSeconds: row[3], staleAfter: staleAfter)
                let observedAt = Date(unixSeconds: (row[5] as Double?) ?? lastSeen)
                ProbeStateText.forEachLatest(row[4]) { probe, since in
                    out.append(LatestStateRow(
                        hostID: host, labels: labels, probe: probe, observedAt: observedAt,
                        hostLastSeen: Date(unixSeconds: lastSeen), stale: stale,
                        classSince: since.map(Date.init(unixSeconds:))))
                }
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
                endpointStates: try count("SELECT coalesce(sum(json_array_length(probes)), 0) FROM host"),
                probeSamples: try count("SELECT coalesce(sum(json_array_length(probes)), 0) FROM probe_report"),
                probeMinutes: try count("SELECT COUNT(*) FROM probe_minute"),
                pullEvents: try count("SELECT COUNT(*) FROM pull_event"),
                activeOutages: try count("SELECT COUNT(*) FROM outage WHERE endedAt IS NULL"),
                databaseBytes: pageCount * pageSize, walBytes: walBytes)
        }
    }
}
