import Foundation
import GRDB

extension FleetStore {
    /// Marks hosts that missed `intervals` of their own report intervals as disconnected; returns how many.
    ///
    /// libzmq tells the ROUTER that *a* connection closed but not whose (ROUTER_NOTIFY is a draft option
    /// Debian's libzmq refuses), so a host's connection state follows its reports: connected by each
    /// report, disconnected after two silent intervals, `stale` (`staleAfter`) later.
    @discardableResult
    public func markSilentHostsDisconnected(now: Date, intervals: Double) throws(StoreError) -> Int {
        try write { db in
            try db.execute(sql: "UPDATE host SET connected = 0 WHERE connected <> 0 AND lastSeen < ? - intervalSeconds * ?",
                           arguments: [now.timeIntervalSince1970, intervals])
            return db.changesCount
        }
    }
}
