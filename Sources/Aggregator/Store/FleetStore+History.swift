import Foundation
import GRDB
import RegwatchShared

/// The lowest pull quota of an egress group during one minute (`headroom_minute`).
public struct HeadroomMinuteRow: Codable, Sendable, Equatable {
    public var egress: String
    public var minute: Date
    public var remaining: Int

    public init(egress: String, minute: Date, remaining: Int) {
        self.egress = egress
        self.minute = minute
        self.remaining = remaining
    }
}

/// What the dashboard draws over time and the latest states cannot say: the quota history per egress.
extension FleetStore {
    /// Records each egress group's lowest remaining quota for the minute of `now`, keeping the lowest
    /// reading when called several times within a minute.
    public func recordHeadroom(_ lowest: [String: Int], at now: Date) throws(StoreError) {
        guard !lowest.isEmpty else { return }
        let minute = MinuteRollUp.minuteStart(now.unixSeconds)
        try write { db in
            for (egress, remaining) in lowest {
                try db.execute(sql: """
                    INSERT INTO headroom_minute (egress, minute, remaining) VALUES (?, ?, ?)
                    ON CONFLICT (egress, minute) DO UPDATE SET remaining = min(remaining, excluded.remaining)
                    """, arguments: [egress, minute, remaining])
            }
        }
    }

    /// Headroom minutes at or after `since`, ordered by egress and minute.
    public func headroom(since: Date) throws(StoreError) -> [HeadroomMinuteRow] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT egress, minute, remaining FROM headroom_minute WHERE minute >= ? ORDER BY egress, minute",
                             arguments: [since.unixSeconds])
                .map { HeadroomMinuteRow(egress: $0[0], minute: Date(unixSeconds: $0[1]), remaining: $0[2]) }
        }
    }
}
