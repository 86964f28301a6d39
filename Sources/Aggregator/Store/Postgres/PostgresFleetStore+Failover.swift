import Foundation
import PostgresNIO
import RegwatchShared

extension PostgresFleetStore {
    public func failoverState() throws(StoreError) -> FailoverState? {
        try read { c in
            guard let text = try run(c, "SELECT state FROM failover_state WHERE id = 1").first?.decode(String.self) else { return nil }
            return try JSONCoding.decoder().decode(FailoverState.self, from: Data(text.utf8))
        }
    }

    public func saveFailover(_ state: FailoverState, now: Date, epoch: UInt64?) throws(StoreError) {
        try write { c in
            // The term's row is locked until commit: a new term cannot start between this check and the save.
            if let epoch, let current = try run(c, "SELECT epoch FROM leader_term WHERE id = 1 FOR SHARE").first?.decode(Int64.self),
               UInt64(current) != epoch {
                throw StoreError.deposed(path: location, epoch: epoch, current: UInt64(current))
            }
            let text = String(decoding: try JSONCoding.encoder().encode(state), as: UTF8.self)
            try run(c, """
                INSERT INTO failover_state (id, state, updatedAt) VALUES (1, \(text), \(now.unixSeconds))
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, updatedAt = excluded.updatedAt
                """)
            for plan in state.plans {
                try run(c, """
                    INSERT INTO failover_plan (generation, state, reason, mirrors, createdAt, updatedAt, kind)
                    VALUES (\(Int64(bitPattern: plan.generation)), \(plan.state.rawValue), \(plan.reason), \(StoreJSON.object(plan.mirrors)),
                            \(plan.createdAt.unixSeconds), \(now.unixSeconds), \(plan.kind.rawValue))
                    ON CONFLICT (generation) DO UPDATE SET state = excluded.state, reason = excluded.reason, updatedAt = excluded.updatedAt
                      WHERE failover_plan.state <> excluded.state OR failover_plan.reason <> excluded.reason
                    """)
            }
        }
    }

    public func beginTerm(holder: String, now: Date) throws(StoreError) -> UInt64 {
        try write { c in
            let epoch = try run(c, """
                INSERT INTO leader_term (id, epoch, holder, since) VALUES (1, 1, \(holder), \(now.unixSeconds))
                ON CONFLICT (id) DO UPDATE SET epoch = leader_term.epoch + 1, holder = excluded.holder, since = excluded.since
                RETURNING epoch
                """).first?.decode(Int64.self) ?? 0
            return UInt64(epoch)
        }
    }

    public func raiseTerm(to minimum: UInt64) throws(StoreError) -> UInt64 {
        try write { c in
            UInt64(try run(c, """
                UPDATE leader_term SET epoch = greatest(epoch, \(Int64(bitPattern: minimum))) WHERE id = 1 RETURNING epoch
                """).first?.decode(Int64.self) ?? 0)
        }
    }

    public func currentTerm() throws(StoreError) -> LeaderTerm? {
        try read { c in
            try run(c, "SELECT epoch, holder, since FROM leader_term WHERE id = 1").first.map { row in
                let (epoch, holder, since) = try row.decode((Int64, String, Double).self)
                return LeaderTerm(epoch: UInt64(epoch), holder: holder, since: Date(unixSeconds: since))
            }
        }
    }

    public func recordFailoverAck(host: String, ack: FailoverAck, at: Date) throws(StoreError) {
        let g = Int64(bitPattern: ack.generation)
        try write { c in
            try run(c, """
                INSERT INTO failover_last_ack (hostId, generation, outcome, detail, at)
                VALUES (\(host), \(g), \(ack.outcome.rawValue), \(ack.reason), \(at.unixSeconds))
                ON CONFLICT (hostId) DO UPDATE SET generation = excluded.generation, outcome = excluded.outcome,
                  detail = excluded.detail, at = excluded.at
                """)
            try run(c, """
                INSERT INTO failover_ack (generation, hostId, outcome, detail, at)
                SELECT \(g), \(host), \(ack.outcome.rawValue), \(ack.reason), \(at.unixSeconds)
                WHERE EXISTS (SELECT 1 FROM failover_plan WHERE generation = \(g))
                ON CONFLICT (generation, hostId) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, at = excluded.at
                """)
        }
    }

    public func lastFailoverAcks() throws(StoreError) -> [String: FailoverInputs.Ack] {
        try read { c in
            var out: [String: FailoverInputs.Ack] = [:]
            for row in try run(c, "SELECT hostId, generation, outcome, detail, at FROM failover_last_ack") {
                let (host, generation, outcome, detail, at) = try row.decode((String, Int64, String, String, Double).self)
                out[host] = StoreRows.ack(generation: generation, outcome: outcome, detail: detail, at: at)
            }
            return out
        }
    }

    public func failoverHosts(now: Date, staleAfter: Int, acks: [String: FailoverInputs.Ack]) throws(StoreError) -> [FailoverInputs.Host] {
        try read { c in
            var hosts = StoreRows.FailoverHosts(now: now.unixSeconds, staleAfter: staleAfter, acks: acks)
            for row in try run(c, """
                SELECT id, labels, mirrorPools, appliedGeneration, lastSeen, intervalSeconds FROM host ORDER BY id COLLATE "C"
                """) {
                let (id, labels, pools, generation, lastSeen, interval) = try row.decode((String, String, String, Int64, Double, Double).self)
                hosts.add(id: id, labels: labels, mirrorPools: pools, appliedGeneration: generation, lastSeen: lastSeen, intervalSeconds: interval)
            }
            return hosts.rows
        }
    }

    public func recoveredOutages(since: Date) throws(StoreError) -> [FailoverInputs.RecoveredOutage] {
        try read { c in
            try run(c, """
                SELECT kind, endpoint, registry, zone, host, egress, endedAt FROM outage
                WHERE state = 'resolved' AND endedAt >= \(since.unixSeconds) ORDER BY id
                """).compactMap { row in
                let (kind, endpoint, registry, zone, host, egress, ended) =
                    try row.decode((String, String?, String?, String?, String?, String?, Double?).self)
                return StoreRows.recovered(kind: kind, endpoint: endpoint, registry: registry, zone: zone, host: host, egress: egress, endedAt: ended)
            }
        }
    }
}
