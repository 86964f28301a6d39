import Foundation
import PostgresNIO
import RegwatchShared

/// The read side on PostgreSQL: each query fetches the columns its SQLite twin fetches, in the same
/// order, and ``StoreRows`` makes the answer, so both backends answer alike.
extension PostgresFleetStore {
    public func hosts(now: Date, staleAfter: Int, id: String?) throws(StoreError) -> [HostRow] {
        let t = now.unixSeconds
        let classIndex = ProbeStateText.latestColumns.firstIndex(of: "class")!
        return try read { c in
            let decoder = JSONDecoder()
            let query: PostgresQuery = """
                SELECT h.id, h.labels, h.lastSeen, h.firstSeen, h.appliedGeneration, h.agentVersion, h.intervalSeconds, h.connected,
                       h.eventSources,
                       EXISTS (SELECT 1 FROM json_array_elements(h.probes::json) p WHERE p ->> \(unescaped: String(classIndex)) <> 'ok')
                       OR EXISTS (SELECT 1 FROM runtime_state r WHERE r.hostId = h.id AND NOT r.valid),
                       h.spoolPending, h.spoolDropped
                FROM host h WHERE \(id)::text IS NULL OR h.id = \(id) ORDER BY h.id COLLATE "C"
                """
            return try run(c, query).map { row in
                let (id, labels, lastSeen, firstSeen, generation, version, interval, connected, sources, problems, pending, dropped) =
                    try row.decode((String, String, Double, Double, Int64, String, Double, Bool, String, Bool, Int?, Int?).self)
                return StoreRows.host(.init(
                    id: id, labels: labels, lastSeen: lastSeen, firstSeen: firstSeen, appliedGeneration: generation, agentVersion: version,
                    intervalSeconds: interval, connected: connected, eventSources: sources, problems: problems, spoolPending: pending,
                    spoolDropped: dropped), now: t, staleAfter: staleAfter, decoder: decoder)
            }
        }
    }

    public func endpoints(now: Date, staleAfter: Int) throws(StoreError) -> [EndpointRow] {
        try read { c in
            var endpoints = StoreRows.Endpoints(now: now.unixSeconds, staleAfter: staleAfter)
            for row in try run(c, "SELECT probes, lastSeen, intervalSeconds FROM host") {
                let (probes, lastSeen, interval) = try row.decode((String, Double, Double).self)
                endpoints.add(probes: probes, lastSeen: lastSeen, intervalSeconds: interval)
            }
            return endpoints.rows
        }
    }

    public func latestStates(now: Date, staleAfter: Int, host hostID: String?) throws(StoreError) -> [LatestStateRow] {
        try read { c in
            var states = StoreRows.LatestStates(now: now.unixSeconds, staleAfter: staleAfter)
            for row in try run(c, """
                SELECT id, labels, lastSeen, intervalSeconds, probes, probesObservedAt FROM host
                WHERE \(hostID)::text IS NULL OR id = \(hostID) ORDER BY id COLLATE "C"
                """) {
                let (host, labels, lastSeen, interval, probes, observedAt) = try row.decode((String, String, Double, Double, String, Double?).self)
                states.add(host: host, labels: labels, lastSeen: lastSeen, intervalSeconds: interval, probes: probes, probesObservedAt: observedAt)
            }
            return states.rows
        }
    }

    public func probeMinutes(since: Date, until: Date?, endpoint: String?) throws(StoreError) -> [ProbeMinuteRow] {
        let from = since.unixSeconds
        let to = until?.unixSeconds ?? .infinity
        return try read { c in
            let decoder = JSONDecoder()
            let query: PostgresQuery = """
                SELECT registry, endpoint, minute, samples, failures, failureClasses, timedSamples, sumMs, minMs, maxMs, buckets
                FROM probe_minute WHERE minute >= \(from) AND minute < \(to) AND (\(endpoint)::text IS NULL OR endpoint = \(endpoint))
                ORDER BY registry COLLATE "C", endpoint COLLATE "C", minute
                """
            return try run(c, query).map { row in
                let (registry, url, minute, samples, failures, classes, timed, sum, minMs, maxMs, buckets) =
                    try row.decode((String, String, Double, Int, Int, String, Int, Double, Double?, Double?, String).self)
                return StoreRows.probeMinute(
                    registry: registry, endpoint: url, minute: minute, samples: samples, failures: failures, failureClasses: classes,
                    timedSamples: timed, sumMs: sum, minMs: minMs, maxMs: maxMs, buckets: buckets, decoder: decoder)
            }
        }
    }

    /// `databaseBytes` is the database's size on the server; there is no WAL file of ours (`walBytes` 0).
    public func status(now: Date, staleAfter: Int) throws(StoreError) -> StoreStatus {
        let t = now.unixSeconds
        return try read { c in
            func count(_ query: PostgresQuery) throws -> Int {
                try run(c, query).first?.decode(Int?.self) ?? 0
            }
            let applied = try run(c, "SELECT id FROM regwatch_migrations ORDER BY appliedAt, id").map { try $0.decode(String.self) }
            return StoreStatus(
                path: location, schemaVersion: applied.last ?? "none",
                hosts: try count("SELECT COUNT(*) FROM host"),
                hostsStale: try count("SELECT COUNT(*) FROM host WHERE \(t) - lastSeen > \(Double(staleAfter)) * intervalSeconds"),
                hostsConnected: try count("SELECT COUNT(*) FROM host WHERE connected"),
                endpointStates: try count("SELECT coalesce(sum(json_array_length(probes::json)), 0)::bigint FROM host"),
                probeSamples: try count("SELECT coalesce(sum(json_array_length(probes::json)), 0)::bigint FROM probe_report"),
                probeMinutes: try count("SELECT COUNT(*) FROM probe_minute"),
                pullEvents: try count("SELECT COUNT(*) FROM pull_event"),
                activeOutages: try count("SELECT COUNT(*) FROM outage WHERE endedAt IS NULL"),
                databaseBytes: Int64(try count("SELECT pg_database_size(current_database())")), walBytes: 0)
        }
    }

    public func runtimeStates(host: String) throws(StoreError) -> [RuntimeConfigState] {
        try read { c in
            let decoder = JSONDecoder()
            return try run(c, """
                SELECT runtime, mirrors, valid, detail, hash FROM runtime_state WHERE hostId = \(host) ORDER BY runtime COLLATE "C"
                """).compactMap { row in
                let (kind, mirrors, valid, detail, hash) = try row.decode((String, String, Bool, String, String).self)
                return StoreRows.runtime(kind, mirrors: mirrors, valid: valid, detail: detail, hash: hash, decoder: decoder)
            }
        }
    }

    public func pullEvents(host: String, failuresOnly: Bool, limit: Int) throws(StoreError) -> [PullEvent] {
        try read { c in
            try run(c, """
                SELECT seq, at, image, registry, endpoint, result, class, detail, source FROM pull_event
                WHERE hostId = \(host) AND (NOT \(failuresOnly) OR result = 'failure') ORDER BY at DESC, seq DESC LIMIT \(limit)
                """).map { row in
                let (seq, at, image, registry, endpoint, result, cls, detail, source) =
                    try row.decode((Int64, Double, String, String, String?, String, String, String, String).self)
                return StoreRows.pullEvent(seq: seq, at: at, image: image, registry: registry, endpoint: endpoint, result: result,
                                           errorClass: cls, detail: detail, source: source)
            }
        }
    }

    public func recordHeadroom(_ lowest: [String: Int], at now: Date) throws(StoreError) {
        guard !lowest.isEmpty else { return }
        let minute = MinuteRollUp.minuteStart(now.unixSeconds)
        try write { c in
            for (egress, remaining) in lowest.sorted(by: { $0.key < $1.key }) {
                try run(c, """
                    INSERT INTO headroom_minute (egress, minute, remaining) VALUES (\(egress), \(minute), \(remaining))
                    ON CONFLICT (egress, minute) DO UPDATE SET remaining = least(headroom_minute.remaining, excluded.remaining)
                    """)
            }
        }
    }

    public func headroom(since: Date) throws(StoreError) -> [HeadroomMinuteRow] {
        try read { c in
            try run(c, """
                SELECT egress, minute, remaining FROM headroom_minute WHERE minute >= \(since.unixSeconds) ORDER BY egress COLLATE "C", minute
                """).map { row in
                let (egress, minute, remaining) = try row.decode((String, Double, Int).self)
                return HeadroomMinuteRow(egress: egress, minute: Date(unixSeconds: minute), remaining: remaining)
            }
        }
    }
}
