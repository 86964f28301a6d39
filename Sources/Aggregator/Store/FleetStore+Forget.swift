import Foundation
import GRDB

extension FleetStore {
    /// Removes decommissioned hosts: their rows and runtime states, so they stop counting as stale
    /// (`regwatch_hosts`, the dashboard, correlation's fleet size). Their pull events and outages stay
    /// as history. All or nothing: an unknown id changes nothing. A host whose agent still reports comes
    /// back with its next report, which is why decommissioning also revokes its key.
    public func forget(hosts ids: [String]) throws(StoreError) {
        let wanted = Array(Set(ids)).sorted()
        try write { db in
            let known = try String.fetchSet(db, sql: "SELECT id FROM host WHERE id IN (\(wanted.map { _ in "?" }.joined(separator: ",")))",
                                            arguments: StatementArguments(wanted))
            let unknown = wanted.filter { !known.contains($0) }
            guard unknown.isEmpty else { throw StoreError.unknownHosts(path: path, hosts: unknown) }
            // Their runtime states go with them (runtime_state.hostId is ON DELETE CASCADE).
            try db.execute(sql: "DELETE FROM host WHERE id IN (\(wanted.map { _ in "?" }.joined(separator: ",")))",
                           arguments: StatementArguments(wanted))
        }
    }
}
