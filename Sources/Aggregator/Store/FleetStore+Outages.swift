import Foundation
import GRDB
import RegwatchShared

/// One outage as the API, the CLI and alerts show it (the `GET /api/v1/outages` fields of docs/api.md, plus
/// `registry` and `evidence`).
public struct OutageRow: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case active, resolved }

    public var id: Int64
    public var kind: OutageKind
    public var state: State
    public var endpoint: String?
    public var registry: String?
    public var zone: String?
    public var host: String?
    public var egress: String?
    public var errorClass: ErrorClass?
    public var affectedHosts: Int
    public var totalHosts: Int
    public var evidence: [OutageEvidence]
    public var startedAt: Date
    public var endedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, kind, state, endpoint, registry, zone, host, egress, errorClass, affectedHosts, totalHosts, evidence, startedAt, endedAt
    }

    /// Absent values are written as `null`, as the API contract says.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(state, forKey: .state)
        try c.encode(endpoint, forKey: .endpoint)
        try c.encode(registry, forKey: .registry)
        try c.encode(zone, forKey: .zone)
        try c.encode(host, forKey: .host)
        try c.encode(egress, forKey: .egress)
        try c.encode(errorClass, forKey: .errorClass)
        try c.encode(affectedHosts, forKey: .affectedHosts)
        try c.encode(totalHosts, forKey: .totalHosts)
        try c.encode(evidence, forKey: .evidence)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(endedAt, forKey: .endedAt)
    }
}

extension FleetStore {
    /// Records one evaluation's transitions in one transaction and returns the rows they touched
    /// (for alerts). The engine's state of each open outage is kept with its row, so
    /// ``activeOutageStates()`` restores the engine after a restart.
    @discardableResult
    public func record(_ transitions: [OutageTransition], active: [OutageKey: ActiveOutage]) throws(StoreError) -> [OutageRow] {
        // Also without transitions: an open outage's recovery hold advances every window and must survive a restart.
        guard !transitions.isEmpty || !active.isEmpty else { return [] }
        let encoder = JSONCoding.encoder()
        return try write { db in
            var touched: [Int64] = []
            for t in transitions {
                switch t {
                case .opened(let c, let at):
                    let state = try active[c.key].map { String(decoding: try encoder.encode($0), as: UTF8.self) }
                    try db.execute(sql: """
                        INSERT INTO outage (kind, state, endpoint, registry, zone, host, egress, errorClass, affectedHosts, totalHosts,
                                            evidence, startedAt, engineState)
                        VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [
                            c.key.kind.rawValue, c.key.endpoint, c.key.registry, c.key.zone, c.key.host, c.key.egress, c.errorClass?.rawValue,
                            c.affectedHosts, c.totalHosts, String(decoding: try encoder.encode(c.evidence), as: UTF8.self),
                            at.timeIntervalSince1970, state,
                        ])
                    touched.append(db.lastInsertedRowID)
                case .updated(let c, _):
                    guard let id = try Self.activeID(db, c.key) else { continue }
                    try db.execute(sql: """
                        UPDATE outage SET errorClass = ?, affectedHosts = ?, totalHosts = ?, evidence = ? WHERE id = ?
                        """, arguments: [c.errorClass?.rawValue, c.affectedHosts, c.totalHosts,
                                         String(decoding: try encoder.encode(c.evidence), as: UTF8.self), id])
                    touched.append(id)
                case .closed(let key, let at):
                    guard let id = try Self.activeID(db, key) else { continue }
                    try db.execute(sql: "UPDATE outage SET state = 'resolved', endedAt = ?, engineState = NULL WHERE id = ?",
                                   arguments: [at.timeIntervalSince1970, id])
                    touched.append(id)
                }
            }
            // Keep every open outage's engine state current (its recovery hold survives a restart).
            for (key, outage) in active {
                guard let id = try Self.activeID(db, key) else { continue }
                try db.execute(sql: "UPDATE outage SET engineState = ? WHERE id = ?",
                               arguments: [String(decoding: try encoder.encode(outage), as: UTF8.self), id])
            }
            return try touched.compactMap { try Self.outage(db, id: $0) }
        }
    }

    /// The engine state of every active outage, to restore ``CorrelationEngine`` on start.
    public func activeOutageStates() throws(StoreError) -> [ActiveOutage] {
        let decoder = JSONCoding.decoder()
        return try read { db in
            try String.fetchAll(db, sql: "SELECT engineState FROM outage WHERE state = 'active' AND engineState IS NOT NULL ORDER BY id")
                .compactMap { try? decoder.decode(ActiveOutage.self, from: Data($0.utf8)) }
        }
    }

    /// Outages, newest first: only active ones, or all (up to `limit`).
    public func outages(activeOnly: Bool, limit: Int) throws(StoreError) -> [OutageRow] {
        try read { db in
            let ids = try Int64.fetchAll(db, sql: """
                SELECT id FROM outage \(activeOnly ? "WHERE state = 'active'" : "") ORDER BY startedAt DESC, id DESC LIMIT ?
                """, arguments: [limit])
            return try ids.compactMap { try Self.outage(db, id: $0) }
        }
    }

    static func activeID(_ db: Database, _ key: OutageKey) throws -> Int64? {
        try Int64.fetchOne(db, sql: """
            SELECT id FROM outage WHERE state = 'active' AND kind = ? AND endpoint IS ? AND registry IS ? AND zone IS ?
              AND host IS ? AND egress IS ? ORDER BY id DESC LIMIT 1
            """, arguments: [key.kind.rawValue, key.endpoint, key.registry, key.zone, key.host, key.egress])
    }

    static func outage(_ db: Database, id: Int64) throws -> OutageRow? {
        guard let row = try Row.fetchOne(db, sql: "SELECT \(StoreRows.outageColumns) FROM outage WHERE id = ?", arguments: [id]) else { return nil }
        return StoreRows.outage(
            id: row[0], kind: row[1], state: row[2], endpoint: row[3], registry: row[4], zone: row[5], host: row[6], egress: row[7],
            errorClass: row[8], affectedHosts: row[9], totalHosts: row[10], evidence: row[11], startedAt: row[12], endedAt: row[13])
    }
}
