import Foundation
import GRDB
import RegwatchShared

/// What the failover controller persists and reads: its state (one JSON document), the timeline of
/// generations and acks, the latest ack per host, and the fleet facts it steps on.
extension FleetStore {
    /// The persisted controller state, nil when none was ever saved.
    public func failoverState() throws(StoreError) -> FailoverState? {
        try read { db in
            guard let text = try String.fetchOne(db, sql: "SELECT state FROM failover_state WHERE id = 1") else { return nil }
            return try JSONCoding.decoder().decode(FailoverState.self, from: Data(text.utf8))
        }
    }

    /// Saves the controller state and its plans' summaries (the timeline) in one transaction.
    public func saveFailover(_ state: FailoverState, now: Date, epoch: UInt64?) throws(StoreError) {
        try write { db in
            if let epoch, let current = try Int64.fetchOne(db, sql: "SELECT epoch FROM leader_term WHERE id = 1"), UInt64(current) != epoch {
                throw StoreError.deposed(path: path, epoch: epoch, current: UInt64(current))
            }
            let text = String(decoding: try JSONCoding.encoder().encode(state), as: UTF8.self)
            try db.execute(sql: """
                INSERT INTO failover_state (id, state, updatedAt) VALUES (1, ?, ?)
                ON CONFLICT(id) DO UPDATE SET state = excluded.state, updatedAt = excluded.updatedAt
                """, arguments: [text, now.unixSeconds])
            for plan in state.plans {
                try db.execute(sql: """
                    INSERT INTO failover_plan (generation, state, reason, mirrors, createdAt, updatedAt, kind) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(generation) DO UPDATE SET state = excluded.state, reason = excluded.reason, updatedAt = excluded.updatedAt
                      WHERE state <> excluded.state OR reason <> excluded.reason
                    """, arguments: [Int64(bitPattern: plan.generation), plan.state.rawValue, plan.reason, StoreJSON.object(plan.mirrors),
                                     plan.createdAt.unixSeconds, now.unixSeconds, plan.kind.rawValue])
            }
        }
    }

    public func beginTerm(holder: String, now: Date) throws(StoreError) -> UInt64 {
        try write { db in
            let epoch = (try Int64.fetchOne(db, sql: "SELECT epoch FROM leader_term WHERE id = 1") ?? 0) + 1
            try db.execute(sql: """
                INSERT INTO leader_term (id, epoch, holder, since) VALUES (1, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, holder = excluded.holder, since = excluded.since
                """, arguments: [epoch, holder, now.unixSeconds])
            return UInt64(epoch)
        }
    }

    public func raiseTerm(to minimum: UInt64) throws(StoreError) -> UInt64 {
        try write { db in
            try db.execute(sql: "UPDATE leader_term SET epoch = max(epoch, ?) WHERE id = 1", arguments: [Int64(bitPattern: minimum)])
            return UInt64(try Int64.fetchOne(db, sql: "SELECT epoch FROM leader_term WHERE id = 1") ?? 0)
        }
    }

    public func currentTerm() throws(StoreError) -> LeaderTerm? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT epoch, holder, since FROM leader_term WHERE id = 1").map {
                LeaderTerm(epoch: UInt64($0[0] as Int64), holder: $0[1], since: Date(unixSeconds: $0[2]))
            }
        }
    }

    /// Records an agent's ack: the host's latest, and the timeline row of that generation (kept only for
    /// generations this aggregator issued).
    public func recordFailoverAck(host: String, ack: FailoverAck, at: Date) throws(StoreError) {
        try write { db in
            let g = Int64(bitPattern: ack.generation)
            try db.execute(sql: """
                INSERT INTO failover_last_ack (hostId, generation, outcome, detail, at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(hostId) DO UPDATE SET generation = excluded.generation, outcome = excluded.outcome,
                  detail = excluded.detail, at = excluded.at
                """, arguments: [host, g, ack.outcome.rawValue, ack.reason, at.unixSeconds])
            try db.execute(sql: """
                INSERT INTO failover_ack (generation, hostId, outcome, detail, at)
                SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM failover_plan WHERE generation = ?)
                ON CONFLICT(generation, hostId) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, at = excluded.at
                """, arguments: [g, host, ack.outcome.rawValue, ack.reason, at.unixSeconds, g])
        }
    }

    /// The latest ack of every host.
    public func lastFailoverAcks() throws(StoreError) -> [String: FailoverInputs.Ack] {
        try read { db in
            var out: [String: FailoverInputs.Ack] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT hostId, generation, outcome, detail, at FROM failover_last_ack") {
                out[row[0]] = StoreRows.ack(generation: row[1], outcome: row[2], detail: row[3], at: row[4])
            }
            return out
        }
    }

    /// Every host as the controller sees it: labels, mirror pools, applied generation, when its latest
    /// report arrived and whether it is stale.
    public func failoverHosts(now: Date, staleAfter: Int, acks: [String: FailoverInputs.Ack]) throws(StoreError) -> [FailoverInputs.Host] {
        try read { db in
            var hosts = StoreRows.FailoverHosts(now: now.unixSeconds, staleAfter: staleAfter, acks: acks)
            let rows = try Row.fetchCursor(db, sql: "SELECT id, labels, mirrorPools, appliedGeneration, lastSeen, intervalSeconds FROM host ORDER BY id")
            while let row = try rows.next() {
                hosts.add(id: row[0], labels: row[1], mirrorPools: row[2], appliedGeneration: row[3], lastSeen: row[4], intervalSeconds: row[5])
            }
            return hosts.rows
        }
    }

    /// Outages resolved since `since`, with the time they stopped (the first healthy window).
    public func recoveredOutages(since: Date) throws(StoreError) -> [FailoverInputs.RecoveredOutage] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT kind, endpoint, registry, zone, host, egress, endedAt FROM outage
                WHERE state = 'resolved' AND endedAt >= ? ORDER BY id
                """, arguments: [since.unixSeconds]).compactMap { row in
                StoreRows.recovered(kind: row[0], endpoint: row[1], registry: row[2], zone: row[3], host: row[4], egress: row[5], endedAt: row[6])
            }
        }
    }
}
