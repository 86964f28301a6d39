import Foundation
import GRDB
import RegwatchShared

/// What the per-host page shows beyond the host row: how its runtimes are configured now and the pull
/// failures it reported lately.
extension FleetStore {
    /// The host's runtime mirror configurations as last reported, ordered by runtime.
    public func runtimeStates(host: String) throws(StoreError) -> [RuntimeConfigState] {
        try read { db in
            let decoder = JSONDecoder()
            return try Row.fetchAll(db, sql: "SELECT runtime, mirrors, valid, detail, hash FROM runtime_state WHERE hostId = ? ORDER BY runtime",
                                    arguments: [host])
                .compactMap { StoreRows.runtime($0[0], mirrors: $0[1], valid: $0[2], detail: $0[3], hash: $0[4], decoder: decoder) }
        }
    }

    /// The host's newest pull events, newest first; with `failuresOnly`, only failed pulls.
    public func pullEvents(host: String, failuresOnly: Bool, limit: Int) throws(StoreError) -> [PullEvent] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT seq, at, image, registry, endpoint, result, class, detail, source FROM pull_event
                WHERE hostId = ? \(failuresOnly ? "AND result = 'failure'" : "") ORDER BY at DESC, seq DESC LIMIT ?
                """, arguments: [host, limit])
                .map { row in
                    StoreRows.pullEvent(seq: row[0], at: row[1], image: row[2], registry: row[3], endpoint: row[4], result: row[5],
                                        errorClass: row[6], detail: row[7], source: row[8])
                }
        }
    }

    /// Outages active at some point in `[since, now]`: still active, or ended at or after `since`;
    /// oldest first.
    public func outages(since: Date, limit: Int) throws(StoreError) -> [OutageRow] {
        try read { db in
            let ids = try Int64.fetchAll(db, sql: """
                SELECT id FROM outage WHERE endedAt IS NULL OR endedAt >= ? ORDER BY startedAt, id LIMIT ?
                """, arguments: [since.unixSeconds, limit])
            return try ids.compactMap { try Self.outage(db, id: $0) }
        }
    }
}
