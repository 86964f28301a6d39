import Foundation
import GRDB

/// The aggregator's fleet state in one embedded SQLite file: hosts, the latest probe outcome per host x
/// endpoint, probe history with per-minute roll-ups, runtime mirror configuration, pull events, and the
/// tables correlation and failover write.
///
/// Why a `DatabasePool` in WAL mode: ingest is a single writer committing large batches while the HTTP
/// API and the CLI read concurrently; WAL lets readers see the last committed batch without blocking
/// the writer. `synchronous = NORMAL` is durable across process crashes in WAL mode (a power loss may
/// drop the last transactions, which agents resend: events are acknowledged only after commit and
/// reports are snapshots). `busy_timeout` covers other processes (`regwatch-aggregator status`) briefly
/// holding the file. Foreign keys are on so removing a host removes its latest state.
///
/// All methods are synchronous and thread-safe; GRDB serialises writes and runs reads on a reader pool.
/// Ingest (`commit`), maintenance (`maintain`) and queries live in extensions in this directory.
public final class FleetStore: FleetStoring {
    /// How long a statement waits for a lock held by another connection before failing.
    public static let busyTimeout: TimeInterval = 5

    public let path: String
    let pool: DatabasePool
    /// Scratch space for text bound by the ingest path (``BindArena``), used inside write transactions only.
    let bindArena = BindArena()

    /// Opens (creating it and its directory if needed) the database at `path` and applies pending migrations.
    ///
    /// With `readOnly`, nothing is created or migrated: a missing file is `cannotOpen` and a file that
    /// still needs migrations is `olderSchema`. Use it for CLI commands that only look, so a wrong path
    /// does not leave an empty database behind.
    ///
    /// Refuses files of other applications (`notRegwatchDatabase`) and files migrated by a newer
    /// regwatch (`newerSchema`) before writing anything into them.
    public init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        let migrator = StoreSchema.migrator
        let applied: Set<String>
        if FileManager.default.fileExists(atPath: path) {
            applied = try Self.inspect(path: path, migrator: migrator)
        } else if readOnly {
            throw .cannotOpen(path: path, reason: "no such file")
        } else {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
                do {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
                } catch {
                    throw .cannotOpen(path: path, reason: "cannot create directory \(dir): \(error.localizedDescription)")
                }
            }
            applied = []
        }

        var config = Configuration()
        config.label = "regwatch.fleet"
        config.foreignKeysEnabled = true
        config.readonly = readOnly
        config.busyMode = .timeout(Self.busyTimeout)
        config.journalMode = .wal
        config.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw .cannotOpen(path: path, reason: StoreError.reason(error))
        }

        let missing = migrator.migrations.filter { !applied.contains($0) }
        guard !missing.isEmpty else { return }
        if readOnly { throw .olderSchema(path: path, missingMigrations: missing) }
        do {
            try migrator.migrate(pool)
        } catch {
            throw .migrationFailed(path: path, reason: StoreError.reason(error))
        }
    }

    /// Looks at an existing file through a separate read-only connection, before the pool switches it
    /// to WAL mode: tells a regwatch database (or an empty file) from anything else, and a database
    /// this binary understands from one migrated by a newer version. Returns the applied migrations.
    private static func inspect(path: String, migrator: DatabaseMigrator) throws(StoreError) -> Set<String> {
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(busyTimeout)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            return try queue.read { db in
                let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                if appID != StoreSchema.applicationID {
                    if appID != 0 { throw StoreError.notRegwatchDatabase(path: path, reason: "application_id \(appID)") }
                    let objects = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master") ?? 0
                    if objects > 0 { throw StoreError.notRegwatchDatabase(path: path, reason: "it holds tables of another application") }
                    return []
                }
                let applied = try migrator.appliedIdentifiers(db)
                let unknown = applied.subtracting(migrator.migrations)
                if !unknown.isEmpty { throw StoreError.newerSchema(path: path, unknownMigrations: unknown.sorted()) }
                return applied
            }
        } catch let e as StoreError {
            throw e
        } catch let e as DatabaseError where e.resultCode == .SQLITE_NOTADB {
            throw .notRegwatchDatabase(path: path, reason: "not an SQLite database")
        } catch {
            throw .cannotOpen(path: path, reason: StoreError.reason(error))
        }
    }

    // MARK: Transactions

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so a
    /// read-then-write transaction cannot fail half-way with `SQLITE_BUSY` when another process wrote.
    func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw .writeFailed(path: path, reason: StoreError.reason(error))
        }
    }

    /// Runs `body` on a reader: a consistent snapshot of the last committed state.
    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.read(body)
        } catch let e as StoreError {
            throw e
        } catch {
            throw .readFailed(path: path, reason: StoreError.reason(error))
        }
    }

    // MARK: Connection state

    /// Sets a host's connection flag (maintenance and tests; ingest sets it with each report and
    /// ``markSilentHostsDisconnected(now:intervals:)`` clears it). Unknown hosts are ignored.
    public func setConnected(hostID: String, connected: Bool) throws(StoreError) {
        try write { db in
            try db.execute(sql: "UPDATE host SET connected = ? WHERE id = ?", arguments: [connected, hostID])
        }
    }

    /// Marks every host disconnected, for `serve` start-up: connections do not survive a restart and
    /// each host is marked connected again by its next report or connection event.
    public func setAllDisconnected() throws(StoreError) {
        try write { db in
            try db.execute(sql: "UPDATE host SET connected = 0 WHERE connected <> 0")
        }
    }

    // MARK: WAL

    public var location: String { path }
    public var isShared: Bool { false }

    /// Folds the WAL into the database file and truncates it, so a stopped aggregator leaves one file.
    public func close() {
        _ = try? checkpoint(.truncate)
    }

    /// Copies WAL content into the database file. `.passive` (what `maintain` does) never waits for
    /// readers or writers; `.truncate` waits up to the busy timeout for readers to finish, then resets
    /// the WAL file to zero bytes: use it at shutdown or after large deletions to give disk space back.
    @discardableResult
    public func checkpoint(_ mode: Database.CheckpointMode = .truncate) throws(StoreError) -> (walFrames: Int, checkpointedFrames: Int) {
        do {
            return try pool.writeWithoutTransaction { db in
                let r = try db.checkpoint(mode)
                return (r.walFrameCount, r.checkpointedFrameCount)
            }
        } catch {
            throw .writeFailed(path: path, reason: StoreError.reason(error))
        }
    }
}

extension Date {
    /// The store's time representation: unix seconds.
    var unixSeconds: Double { timeIntervalSince1970 }

    init(unixSeconds: Double) {
        self.init(timeIntervalSince1970: unixSeconds)
    }
}
