import Foundation
import GRDB

/// Why the fleet database could not be opened, read or written.
///
/// Every case names the database file, because the operator's next step is about that file (a path in
/// the config, a permission, a full disk, an older binary). `code` is stable (docs/errors.md);
/// `description` is the one line `regwatch-aggregator` prints.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file or its directory cannot be opened or created (permissions, missing directory, read-only open of a missing file).
    case cannotOpen(path: String, reason: String)
    /// The file is not SQLite, or is an SQLite database of some other application.
    case notRegwatchDatabase(path: String, reason: String)
    /// The database was migrated by a newer regwatch: it records migrations this binary does not know.
    /// Writing to it could corrupt state the newer version relies on, so it is refused.
    case newerSchema(path: String, unknownMigrations: [String])
    /// A read-only open found a database that still needs migrations this binary would apply.
    case olderSchema(path: String, missingMigrations: [String])
    case migrationFailed(path: String, reason: String)
    case readFailed(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    /// A shared database (PostgreSQL) did not answer, or the connection to it broke: nothing was written,
    /// and what the call needed may work through another aggregator or after a retry.
    case unavailable(path: String, reason: String)
    /// An operator named hosts the database does not have (nothing was changed).
    case unknownHosts(path: String, hosts: [String])
    /// A leader's write of term `epoch` after another aggregator started term `current` (nothing was written).
    case deposed(path: String, epoch: UInt64, current: UInt64)
    /// An operator's change sent to an aggregator that does not lead (`leader`: who does, when known).
    case notLeader(path: String, leader: String?)

    /// Stable machine-readable code.
    public var code: String {
        switch self {
        case .cannotOpen: "cannot_open"
        case .notRegwatchDatabase: "not_regwatch_database"
        case .newerSchema: "newer_schema"
        case .olderSchema: "older_schema"
        case .migrationFailed: "migration_failed"
        case .readFailed: "read_failed"
        case .writeFailed: "write_failed"
        case .unavailable: "unavailable"
        case .unknownHosts: "unknown_host"
        case .deposed: "deposed"
        case .notLeader: "not_leader"
        }
    }

    public var path: String {
        switch self {
        case .cannotOpen(let p, _), .notRegwatchDatabase(let p, _), .newerSchema(let p, _), .olderSchema(let p, _),
             .migrationFailed(let p, _), .readFailed(let p, _), .writeFailed(let p, _), .unavailable(let p, _), .unknownHosts(let p, _), .deposed(let p, _, _), .notLeader(let p, _): p
        }
    }

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): "\(p): cannot open the database: \(r)"
        case .notRegwatchDatabase(let p, let r): "\(p): not a regwatch database (\(r)); point `database:` at another file"
        case .newerSchema(let p, let m):
            "\(p): database was written by a newer regwatch (unknown migrations: \(m.joined(separator: ", "))); upgrade regwatch-aggregator"
        case .olderSchema(let p, let m):
            "\(p): database needs migrations \(m.joined(separator: ", ")); run `regwatch-aggregator serve` once to apply them"
        case .migrationFailed(let p, let r): "\(p): cannot migrate the database: \(r)"
        case .readFailed(let p, let r): "\(p): cannot read the database: \(r)"
        case .writeFailed(let p, let r): "\(p): cannot write the database: \(r)"
        case .unavailable(let p, let r): "\(p): no answer from the database: \(r)"
        case .unknownHosts(let p, let h):
            "\(p): no such host: \(h.map { "\"\($0.prefix(80))\"" }.joined(separator: ", ")) (nothing was forgotten; `regwatch-aggregator hosts` lists them)"
        case .deposed(let p, let e, let c):
            "\(p): leadership term \(e) has ended (term \(c) started on another aggregator); nothing was written"
        case .notLeader(let p, let l):
            "\(p): this aggregator does not lead; send it to the leader\(l.map { " (\($0))" } ?? "") (nothing was changed)"
        }
    }

    /// A short human reason for an SQLite/GRDB error, without SQL text or arguments.
    static func reason(_ error: any Error) -> String {
        guard let e = error as? DatabaseError else { return "\(error)" }
        let message = e.message ?? "SQLite error \(e.extendedResultCode.rawValue)"
        switch e.resultCode {
        case .SQLITE_FULL: return "disk full (\(message))"
        case .SQLITE_BUSY, .SQLITE_LOCKED: return "database is locked by another connection for more than \(Int(FleetStore.busyTimeout)) s (\(message))"
        case .SQLITE_READONLY: return "database is read-only (\(message))"
        case .SQLITE_CORRUPT: return "database file is corrupt (\(message))"
        case .SQLITE_CANTOPEN: return "cannot open file (\(message))"
        case .SQLITE_PERM, .SQLITE_AUTH: return "permission denied (\(message))"
        case .SQLITE_IOERR: return "I/O error (\(message))"
        default: return message
        }
    }
}
