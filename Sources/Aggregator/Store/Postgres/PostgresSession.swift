import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// One PostgreSQL connection used synchronously, as the store's callers use SQLite: each call blocks
/// until the server answered, on futures that run on NIO's own threads (never the Swift concurrency
/// pool, so a blocked caller cannot starve what it waits for).
///
/// A call holds the session for its whole transaction, so statements of two transactions never mix.
/// A connection that broke (server restart, network cut) is replaced on the next call; the call that
/// saw it break fails, and its transaction is rolled back by the server.
final class PostgresSession: Sendable {
    let location: PostgresLocation
    private let configuration: PostgresConnection.Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex<PostgresConnection?>(nil)
    /// How long one answer may take: a server cut off by the network sends nothing and resets nothing,
    /// so without a bound a call would wait for the operating system's TCP timeout (about 15 minutes).
    let answerTimeout: TimeAmount
    /// Serialises calls: a connection runs one transaction at a time.
    private let turn = NSLock()
    private static let ids = Atomic<Int>(0)

    /// - Parameter deadPeerSeconds: how soon the server gives up on this connection once no packet of it
    ///   arrives (TCP keepalive and user timeout, set per session). Without it a cut-off client's
    ///   session, with its locks (the leader's advisory lock, an ingest's row locks), lives until the
    ///   operating system's keepalive: two hours by default.
    /// - Parameter answerTimeout: bound of each connect and each statement's answer (``answerTimeout``).
    init(location: PostgresLocation, password: String?, group: any EventLoopGroup, logger: Logger, answerTimeout: TimeAmount = .seconds(15),
         deadPeerSeconds: Int = 10) throws(StoreError) {
        self.location = location
        self.answerTimeout = answerTimeout
        self.group = group
        self.logger = logger
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch location.sslmode {
            case .disable: tls = .disable
            case .prefer, .require:
                var c = TLSConfiguration.makeClientConfiguration()
                c.certificateVerification = .none
                let context = try NIOSSLContext(configuration: c)
                tls = location.sslmode == .prefer ? .prefer(context) : .require(context)
            case .verifyCA, .verifyFull:
                var c = TLSConfiguration.makeClientConfiguration()
                c.certificateVerification = location.sslmode == .verifyFull ? .fullVerification : .noHostnameVerification
                tls = .require(try NIOSSLContext(configuration: c))
            }
        } catch {
            throw .cannotOpen(path: location.description, reason: "TLS setup failed: \(error)")
        }
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: tls)
        configuration.options.connectTimeout = answerTimeout
        // Only the name goes with the connection request: connection poolers (PgBouncer) refuse other
        // startup parameters. The rest is set once connected (``sessionSettings``).
        configuration.options.additionalStartupParameters = [("application_name", "regwatch-aggregator")]
        self.configuration = configuration
        self.deadPeerSeconds = deadPeerSeconds
    }

    private let deadPeerSeconds: Int

    /// A connection must be closed before it is released; a store dropped without ``close()`` closes here.
    deinit {
        let connection = state.withLock { $0 }
        try? connection?.close().wait()
    }

    /// Runs `body` with the connection, connecting first if there is none. A failure that broke the
    /// connection drops it, so the next call connects again.
    ///
    /// While the server is unreachable, calls within ``retryAfter`` of the last failed one fail at once,
    /// so callers do not queue behind one another's timeouts; the first call after it tries again.
    /// - Parameter answerTimeout: this call's deadline per answer, instead of the session's (maintenance).
    func withConnection<T>(answerTimeout: TimeAmount? = nil, _ body: (PostgresConnection) throws -> T) throws -> T {
        try failFast()
        turn.lock()
        defer { turn.unlock() }
        try failFast()
        // The turn is held for the whole call, so the override is this call's alone.
        callTimeout.withLock { $0 = answerTimeout }
        defer { callTimeout.withLock { $0 = nil } }
        let connection: PostgresConnection
        do {
            connection = try current()
        } catch {
            down.withLock { $0 = (ContinuousClock.now, StoreError.reason(postgres: error)) }
            throw error
        }
        do {
            let result = try body(connection)
            down.withLock { $0 = nil }
            return result
        } catch {
            if connection.isClosed || Self.isConnectionError(error) {
                state.withLock { $0 = nil }
                try? connection.close().wait()
                down.withLock { $0 = (ContinuousClock.now, StoreError.reason(postgres: error)) }
            }
            throw error
        }
    }

    /// How long after a failed connect or a broken connection calls fail without trying.
    static let retryAfter: Duration = .seconds(1)
    /// When the connection last failed, and why; nil while it works.
    private let down = Mutex<(at: ContinuousClock.Instant, reason: String)?>(nil)

    private func failFast() throws(Unreachable) {
        guard let (at, reason) = down.withLock({ $0 }), ContinuousClock.now - at < Self.retryAfter else { return }
        throw Unreachable(reason: reason)
    }

    /// The server failed the last attempt under ``retryAfter`` ago.
    struct Unreachable: Error, CustomStringConvertible {
        let reason: String
        var description: String { "unreachable, retrying within \(PostgresSession.retryAfter): \(reason)" }
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` when it returns, `ROLLBACK` when it throws.
    /// The commit has been answered when this returns, so what it wrote is durable.
    /// - Parameter answerTimeout: a longer deadline for this transaction (maintenance, migrations); the
    ///   server's `statement_timeout` is raised to match for it alone.
    func transaction<T>(isolation: String = "READ COMMITTED", answerTimeout: TimeAmount? = nil, _ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection(answerTimeout: answerTimeout) { c in
            try execute(c, sql: "BEGIN ISOLATION LEVEL \(isolation)")
            if let answerTimeout { try execute(c, sql: "SET LOCAL statement_timeout = \(Self.statementTimeoutMs(answerTimeout))") }
            do {
                let result = try body(c)
                try execute(c, sql: "COMMIT")
                return result
            } catch {
                if !c.isClosed { try? execute(c, sql: "ROLLBACK") }
                throw error
            }
        }
    }

    /// One statement and all its rows.
    @discardableResult
    func run(_ c: PostgresConnection, _ query: PostgresQuery) throws -> [PostgresRow] {
        try wait(c.query(query, logger: logger), on: c).rows
    }

    /// The answer of a statement sent on `c`, within ``answerTimeout``; past it the connection is closed
    /// (failing whatever else is in flight on it) and the call fails as a broken connection.
    func wait<T: Sendable>(_ answer: EventLoopFuture<T>, on c: PostgresConnection) throws -> T {
        let answered = DispatchSemaphore(value: 0)
        let result = Mutex<Result<T, any Error>?>(nil)
        answer.whenComplete { r in
            result.withLock { $0 = r }
            answered.signal()
        }
        let deadline = callTimeout.withLock { $0 } ?? answerTimeout
        guard answered.wait(timeout: .now() + .nanoseconds(Int(deadline.nanoseconds))) == .success, let r = result.withLock({ $0 }) else {
            let _: EventLoopFuture<Void> = c.close()
            throw AnswerTimeout(after: deadline)
        }
        return try r.get()
    }

    /// No answer within ``answerTimeout``: counted as a broken connection, so the next call connects again.
    struct AnswerTimeout: Error, CustomStringConvertible {
        let after: TimeAmount
        var description: String { "no answer from the server within \(Double(after.nanoseconds) / 1e9) s" }
    }

    /// Statements without values, such as migrations' DDL, one at a time (PostgreSQL's extended
    /// protocol takes one statement per query). They are split at `;`, which they must not hold otherwise.
    func execute(_ c: PostgresConnection, sql: String) throws {
        for statement in sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
            _ = try wait(c.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger), on: c)
        }
    }

    func close() {
        turn.lock()
        defer { turn.unlock() }
        let connection = state.withLock { c in
            defer { c = nil }
            return c
        }
        try? connection?.close().wait()
    }

    /// A deadline for the call holding the turn, set by ``withConnection(answerTimeout:_:)``.
    private let callTimeout = Mutex<TimeAmount?>(nil)

    /// Whether `c` is this session's connection (a store has one session for reads, one for writes).
    func owns(_ c: PostgresConnection) -> Bool { state.withLock { $0 === c } }

    private func current() throws -> PostgresConnection {
        if let c = state.withLock({ $0 }), !c.isClosed { return c }
        let id = Self.ids.add(1, ordering: .relaxed).newValue
        let c = try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
        for (name, value) in Self.sessionSettings(deadPeerSeconds: deadPeerSeconds, answerTimeout: answerTimeout) {
            do { _ = try wait(c.query(PostgresQuery(unsafeSQL: "SET \(name) = \(value)"), logger: logger), on: c) } catch {
                // An older server or a pooler may not know one: what it does is then the server's default.
                guard !Self.isConnectionError(error) else {
                    try? c.close().wait()
                    throw error
                }
                logger.debug("session setting refused", metadata: ["setting": "\(name)", "error": "\(StoreError.reason(postgres: error))"])
            }
        }
        state.withLock { $0 = c }
        return c
    }

    /// Session settings made once connected: the dead peer timeouts; a `statement_timeout` just under the
    /// answer deadline, so the server itself stops a statement the client gives up on (and releases its
    /// locks) instead of running it on; and a bound on a transaction left open (a stopped process must
    /// not hold row locks).
    static func sessionSettings(deadPeerSeconds: Int, answerTimeout: TimeAmount) -> [(String, String)] {
        let s = max(2, deadPeerSeconds)
        return [
            ("tcp_keepalives_idle", "\(max(1, s - 2))"),
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "2"),
            ("tcp_user_timeout", "\(s * 1000)"),
            ("statement_timeout", "\(statementTimeoutMs(answerTimeout))"),
            ("idle_in_transaction_session_timeout", "60000"),
        ]
    }

    /// Milliseconds: nine tenths of the client's deadline.
    static func statementTimeoutMs(_ answerTimeout: TimeAmount) -> Int64 {
        max(100, answerTimeout.nanoseconds / 1_000_000 * 9 / 10)
    }

    /// Whether `error` says the connection is broken (not what a statement or the store decided).
    static func isConnectionError(_ error: any Error) -> Bool {
        if error is AnswerTimeout || error is Unreachable || error is ChannelError || error is IOError { return true }
        // Anything else that is not postgres-nio's came from the caller's own code (a store rule, a decoding).
        guard let e = error as? PSQLError else { return false }
        switch e.code {
        case .server, .queryCancelled, .tooManyParameters, .invalidCommandTag: return false
        default: return true
        }
    }
}

extension StoreError {
    /// A short reason for a PostgreSQL error: the server's message and SQLSTATE, or what broke the
    /// connection; never the SQL or its values.
    static func reason(postgres error: any Error) -> String {
        if let e = error as? PSQLError {
            if let info = e.serverInfo, let message = info[.message] {
                return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
            }
            if let underlying = e.underlying { return "\(e.code): \(underlying)" }
            return "\(e.code)"
        }
        if let e = error as? PostgresDecodingError { return "unexpected column type (\(e.targetType) from \(e.postgresType))" }
        return "\(error)"
    }
}
