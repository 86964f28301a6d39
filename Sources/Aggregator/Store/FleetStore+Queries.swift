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
    public func hosts(now: Date, staleAfter: Int, id: String?) throws(StoreError) -> [HostRow] {
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
                out.append(StoreRows.host(.init(
                    id: row[0], labels: row[1], lastSeen: row[2], firstSeen: row[3], appliedGeneration: row[4], agentVersion: row[5],
                    intervalSeconds: row[6], connected: row[7], eventSources: row[8], problems: row[9], spoolPending: row[10],
                    spoolDropped: row[11]), now: t, staleAfter: staleAfter, decoder: decoder))
            }
            return out
        }
    }

    /// Every endpoint known from latest states, ordered by registry, role (upstream first), endpoint.
    /// Counts, classes, quantiles and quota consider non-stale hosts only; an endpoint only stale hosts
    /// know is still listed, with zero hosts reporting, so it does not silently vanish.
    public func endpoints(now: Date, staleAfter: Int) throws(StoreError) -> [EndpointRow] {
        try read { db in
            var endpoints = StoreRows.Endpoints(now: now.unixSeconds, staleAfter: staleAfter)
            let rows = try Row.fetchCursor(db, sql: "SELECT probes, lastSeen, intervalSeconds FROM host")
            while let row = try rows.next() { endpoints.add(probes: row[0], lastSeen: row[1], intervalSeconds: row[2]) }
            return endpoints.rows
        }
    }

    /// Every host x endpoint latest state with the host's labels and a `stale` flag, ordered by host,
    /// registry, endpoint: the snapshot correlation evaluates each window.
    /// With `host`, only that host's.
    public func latestStates(now: Date, staleAfter: Int, host hostID: String?) throws(StoreError) -> [LatestStateRow] {
        try read { db in
            var states = StoreRows.LatestStates(now: now.unixSeconds, staleAfter: staleAfter)
            let rows = try Row.fetchCursor(db, sql: """
                SELECT id, labels, lastSeen, intervalSeconds, probes, probesObservedAt FROM host \(hostID == nil ? "" : "WHERE id = ?") ORDER BY id
                """, arguments: hostID.map { [$0] } ?? [])
            while let row = try rows.next() {
                states.add(host: row[0], labels: row[1], lastSeen: row[2], intervalSeconds: row[3], probes: row[4], probesObservedAt: row[5])
            }
            return states.rows
        }
    }

    /// Rolled-up probe minutes in `[since, until)`, optionally for one endpoint URL, ordered by
    /// registry, endpoint, minute.
    public func probeMinutes(since: Date, until: Date?, endpoint: String?) throws(StoreError) -> [ProbeMinuteRow] {
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
                StoreRows.probeMinute(
                    registry: row[0], endpoint: row[1], minute: row[2], samples: row[3], failures: row[4], failureClasses: row[5],
                    timedSamples: row[6], sumMs: row[7], minMs: row[8], maxMs: row[9], buckets: row[10], decoder: decoder)
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
