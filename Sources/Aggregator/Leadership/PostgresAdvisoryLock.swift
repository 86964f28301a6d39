import Dispatch
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// PostgreSQL's session advisory lock on a connection of its own: held while that session lives, so a
/// leader that crashed, was cut off or lost its connection stops holding it without anyone's help, and
/// the server lets the next candidate take it.
///
/// A check is a query on that very session with a short timeout: a leader whose database cannot answer
/// within it counts as not holding the lock and stops planning, before the server (which may take until
/// its TCP keepalive to notice) grants the lock to another.
public final class PostgresAdvisoryLock: LeaderLock {
    /// The lock's key ("RgWt", then 2: the leader).
    public static let key: Int64 = 0x5267_5774_0000_0002

    let session: PostgresSession
    let logger: Logger

    public init(location: PostgresLocation, password: String?, timeout: TimeAmount = .seconds(2),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) throws(StoreError) {
        // The server ends a cut-off leader's session (and frees the lock) about two timeouts after the
        // leader itself stopped trusting it, so two leaders never overlap.
        let seconds = Int((timeout.nanoseconds + 999_999_999) / 1_000_000_000)
        session = try PostgresSession(location: location, password: password, group: group, logger: logger, answerTimeout: timeout,
                                      deadPeerSeconds: 2 + 2 * seconds)
        self.logger = logger
    }

    public func acquire() -> Bool {
        ask("SELECT pg_try_advisory_lock(\(Self.key))")
    }

    /// The session still holds the lock: `pg_locks` lists it for this backend.
    public func stillHeld() -> Bool {
        ask("""
            SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
              AND objid = \(Int64(Self.key & 0xFFFF_FFFF)) AND classid = \(Int64(Self.key >> 32)))
            """)
    }

    public func release() {
        session.close()
    }

    /// A boolean query on the lock's session within the timeout; false on any error (the session is then
    /// dropped, and with it the lock, so a late answer cannot leave it held unknowingly).
    private func ask(_ query: PostgresQuery) -> Bool {
        do {
            return try session.withConnection { c in
                try session.run(c, query).first?.decode(Bool.self) ?? false
            }
        } catch {
            logger.warning("leader lock check failed", metadata: ["error": "\(StoreError.reason(postgres: error))"])
            session.close()
            return false
        }
    }
}
