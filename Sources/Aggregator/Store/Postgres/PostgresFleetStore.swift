import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// The fleet state in a PostgreSQL database, for several aggregators sharing one: the same tables,
/// answers and ingest contract as ``FleetStore`` (one test suite runs against both).
///
/// Two connections: ingest, correlation and failover write on one (a transaction at a time, as SQLite's
/// single writer), and the HTTP API and the CLI read on the other, so a page never waits for a batch.
/// Several aggregators write concurrently; what two may write for one host is ordered by the rows'
/// locks and by `lastCycleStartedAt` (newest report wins whoever commits it).
public final class PostgresFleetStore: FleetStoring {
    public let postgres: PostgresLocation
    public var location: String { postgres.description }
    public var isShared: Bool { true }
    let writer: PostgresSession
    let reader: PostgresSession
    let logger: Logger

    /// Connects, refuses a database of another application or of a newer regwatch, and applies pending
    /// migrations (with `readOnly`, only checks that none is pending).
    public init(location: PostgresLocation, password: String?, readOnly: Bool = false,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "regwatch.store")) throws(StoreError) {
        postgres = location
        self.logger = logger
        writer = try PostgresSession(location: location, password: password, group: group, logger: logger)
        // Reads answer the API and `/healthz`, which should say "database unavailable" soon, not hang.
        reader = try PostgresSession(location: location, password: password, group: group, logger: logger, answerTimeout: .seconds(5))
        let migrations = PostgresSchema.migrations.map(\.id)
        do {
            // Migrations may rewrite large tables: they get minutes, not the writer's 15 s.
            try writer.transaction(answerTimeout: .seconds(600)) { c in
                try writer.run(c, "SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))")
                let applied = try Self.appliedMigrations(c, session: writer)
                let unknown = applied.filter { !migrations.contains($0) }
                if !unknown.isEmpty { throw StoreError.newerSchema(path: location.description, unknownMigrations: unknown.sorted()) }
                let missing = PostgresSchema.migrations.filter { !applied.contains($0.id) }
                if missing.isEmpty { return }
                if readOnly { throw StoreError.olderSchema(path: location.description, missingMigrations: missing.map(\.id)) }
                if applied.isEmpty {
                    try writer.execute(c, sql: "CREATE TABLE regwatch_migrations (id TEXT PRIMARY KEY, appliedAt DOUBLE PRECISION NOT NULL)")
                }
                for m in missing {
                    do {
                        try writer.execute(c, sql: m.sql)
                        try writer.run(c, "INSERT INTO regwatch_migrations (id, appliedAt) VALUES (\(m.id), \(Date().unixSeconds))")
                    } catch {
                        throw StoreError.migrationFailed(path: location.description, reason: "\(m.id): \(StoreError.reason(postgres: error))")
                    }
                }
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw .cannotOpen(path: location.description, reason: StoreError.reason(postgres: error))
        }
    }

    /// The migrations recorded in the database; refuses one whose schema holds tables but no
    /// `regwatch_migrations` (another application's).
    private static func appliedMigrations(_ c: PostgresConnection, session: PostgresSession) throws -> Set<String> {
        let tables = try session.run(c, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()")
            .map { try $0.decode(String.self) }
        guard tables.contains("regwatch_migrations") else {
            if !tables.isEmpty {
                throw StoreError.notRegwatchDatabase(path: session.location.description, reason: "it holds tables of another application (\(tables.sorted().prefix(3).joined(separator: ", ")))")
            }
            return []
        }
        return Set(try session.run(c, "SELECT id FROM regwatch_migrations").map { try $0.decode(String.self) })
    }

    // MARK: Transactions

    /// Runs `body` in one write transaction on the writer connection.
    /// - Parameter answerTimeout: a longer deadline than the writer's 15 s (maintenance).
    func write<T>(answerTimeout: TimeAmount? = nil, _ body: (PostgresConnection) throws -> T) throws(StoreError) -> T {
        do {
            return try writer.transaction(answerTimeout: answerTimeout, body)
        } catch let e as StoreError {
            throw e
        } catch {
            if PostgresSession.isConnectionError(error) { throw .unavailable(path: location, reason: StoreError.reason(postgres: error)) }
            throw .writeFailed(path: location, reason: StoreError.reason(postgres: error))
        }
    }

    /// Runs `body` on one snapshot (`REPEATABLE READ`) on the reader connection.
    func read<T>(_ body: (PostgresConnection) throws -> T) throws(StoreError) -> T {
        do {
            return try reader.transaction(isolation: "REPEATABLE READ READ ONLY", body)
        } catch let e as StoreError {
            throw e
        } catch {
            if PostgresSession.isConnectionError(error) { throw .unavailable(path: location, reason: StoreError.reason(postgres: error)) }
            throw .readFailed(path: location, reason: StoreError.reason(postgres: error))
        }
    }

    /// One statement's rows, on the connection of the `read` or `write` it runs in.
    @discardableResult
    func run(_ c: PostgresConnection, _ query: PostgresQuery) throws -> [PostgresRow] {
        try session(of: c).run(c, query)
    }

    /// How many rows a statement changed.
    func changes(_ c: PostgresConnection, _ query: PostgresQuery) throws -> Int {
        try session(of: c).wait(c.query(query, logger: logger), on: c).metadata.rows ?? 0
    }

    /// The session `c` belongs to, whose deadline its statements get.
    private func session(of c: PostgresConnection) -> PostgresSession { reader.owns(c) ? reader : writer }

    // MARK: Connection state

    public func setConnected(hostID: String, connected: Bool) throws(StoreError) {
        try write { c in _ = try run(c, "UPDATE host SET connected = \(connected) WHERE id = \(hostID)") }
    }

    public func setAllDisconnected() throws(StoreError) {
        try write { c in _ = try run(c, "UPDATE host SET connected = false WHERE connected") }
    }

    @discardableResult
    public func markSilentHostsDisconnected(now: Date, intervals: Double) throws(StoreError) -> Int {
        try write { c in
            // Rows an ingest holds are skipped (their hosts are reporting), so this never waits on one, nor
            // deadlocks with one locking the same rows in another order.
            try changes(c, """
                UPDATE host SET connected = false WHERE id IN (
                    SELECT id FROM host WHERE connected AND lastSeen < \(now.unixSeconds) - intervalSeconds * \(intervals)
                    ORDER BY id FOR UPDATE SKIP LOCKED)
                """)
        }
    }

    public func forget(hosts ids: [String]) throws(StoreError) {
        let wanted = Array(Set(ids)).sorted()
        try write { c in
            let known = Set(try run(c, "SELECT id FROM host WHERE id = ANY(\(wanted))").map { try $0.decode(String.self) })
            let unknown = wanted.filter { !known.contains($0) }
            guard unknown.isEmpty else { throw StoreError.unknownHosts(path: location, hosts: unknown) }
            try run(c, "DELETE FROM host WHERE id = ANY(\(wanted))")
        }
    }

    public func close() {
        writer.close()
        reader.close()
    }
}
