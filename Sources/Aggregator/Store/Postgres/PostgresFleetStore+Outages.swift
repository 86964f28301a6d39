import Foundation
import PostgresNIO
import RegwatchShared

extension PostgresFleetStore {
    /// ``FleetStore/record(_:active:)`` on PostgreSQL: one transaction, the touched rows returned.
    @discardableResult
    public func record(_ transitions: [OutageTransition], active: [OutageKey: ActiveOutage]) throws(StoreError) -> [OutageRow] {
        guard !transitions.isEmpty || !active.isEmpty else { return [] }
        let encoder = JSONCoding.encoder()
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        return try write { c in
            var touched: [Int64] = []
            for t in transitions {
                switch t {
                case .opened(let o, let at):
                    let state = try active[o.key].map(json)
                    let id = try run(c, """
                        INSERT INTO outage (kind, state, endpoint, registry, zone, host, egress, errorClass, affectedHosts, totalHosts,
                                            evidence, startedAt, engineState)
                        VALUES (\(o.key.kind.rawValue), 'active', \(o.key.endpoint), \(o.key.registry), \(o.key.zone), \(o.key.host),
                                \(o.key.egress), \(o.errorClass?.rawValue), \(o.affectedHosts), \(o.totalHosts), \(try json(o.evidence)),
                                \(at.unixSeconds), \(state))
                        RETURNING id
                        """).first?.decode(Int64.self)
                    if let id { touched.append(id) }
                case .updated(let o, _):
                    guard let id = try activeID(c, o.key) else { continue }
                    try run(c, """
                        UPDATE outage SET errorClass = \(o.errorClass?.rawValue), affectedHosts = \(o.affectedHosts),
                            totalHosts = \(o.totalHosts), evidence = \(try json(o.evidence)) WHERE id = \(id)
                        """)
                    touched.append(id)
                case .closed(let key, let at):
                    guard let id = try activeID(c, key) else { continue }
                    try run(c, "UPDATE outage SET state = 'resolved', endedAt = \(at.unixSeconds), engineState = NULL WHERE id = \(id)")
                    touched.append(id)
                }
            }
            for (key, outage) in active {
                guard let id = try activeID(c, key) else { continue }
                try run(c, "UPDATE outage SET engineState = \(try json(outage)) WHERE id = \(id)")
            }
            return try outages(c, ids: touched)
        }
    }

    public func activeOutageStates() throws(StoreError) -> [ActiveOutage] {
        let decoder = JSONCoding.decoder()
        return try read { c in
            try run(c, "SELECT engineState FROM outage WHERE state = 'active' AND engineState IS NOT NULL ORDER BY id").compactMap { row in
                try? decoder.decode(ActiveOutage.self, from: Data(try row.decode(String.self).utf8))
            }
        }
    }

    public func outages(activeOnly: Bool, limit: Int) throws(StoreError) -> [OutageRow] {
        try read { c in
            let ids = try run(c, """
                SELECT id FROM outage WHERE NOT \(activeOnly) OR state = 'active' ORDER BY startedAt DESC, id DESC LIMIT \(limit)
                """).map { try $0.decode(Int64.self) }
            return try outages(c, ids: ids)
        }
    }

    public func outages(since: Date, limit: Int) throws(StoreError) -> [OutageRow] {
        try read { c in
            let ids = try run(c, """
                SELECT id FROM outage WHERE endedAt IS NULL OR endedAt >= \(since.unixSeconds) ORDER BY startedAt, id LIMIT \(limit)
                """).map { try $0.decode(Int64.self) }
            return try outages(c, ids: ids)
        }
    }

    private func activeID(_ c: PostgresConnection, _ key: OutageKey) throws -> Int64? {
        try run(c, """
            SELECT id FROM outage WHERE state = 'active' AND kind = \(key.kind.rawValue) AND endpoint IS NOT DISTINCT FROM \(key.endpoint)
              AND registry IS NOT DISTINCT FROM \(key.registry) AND zone IS NOT DISTINCT FROM \(key.zone)
              AND host IS NOT DISTINCT FROM \(key.host) AND egress IS NOT DISTINCT FROM \(key.egress)
            ORDER BY id DESC LIMIT 1
            """).first?.decode(Int64.self)
    }

    /// The rows of `ids`, in that order.
    private func outages(_ c: PostgresConnection, ids: [Int64]) throws -> [OutageRow] {
        guard !ids.isEmpty else { return [] }
        var byID: [Int64: OutageRow] = [:]
        for row in try run(c, "SELECT \(unescaped: StoreRows.outageColumns) FROM outage WHERE id = ANY(\(ids))") {
            let (id, kind, state, endpoint, registry, zone, host, egress, cls, affected, total, evidence, started, ended) =
                try row.decode((Int64, String, String, String?, String?, String?, String?, String?, String?, Int, Int, String, Double, Double?).self)
            byID[id] = StoreRows.outage(
                id: id, kind: kind, state: state, endpoint: endpoint, registry: registry, zone: zone, host: host, egress: egress,
                errorClass: cls, affectedHosts: affected, totalHosts: total, evidence: evidence, startedAt: started, endedAt: ended)
        }
        return ids.compactMap { byID[$0] }
    }
}
