import Dispatch
import Logging
import RegwatchShared
import Synchronization

/// The ZAP policy of the aggregator. An enrolled key is admitted and its connection bound to its host
/// id; a revoked or rejected key is refused; any other key is admitted only as a *joining* peer (ZAP
/// user id `?KEY`, see ``JoiningPeer``), from which ingest accepts nothing but `join`.
///
/// It re-reads the enrollment documents when their stamps change (checked on each handshake, and at most
/// every ``recheckNanoseconds`` from ingest), so `keys accept`, `keys revoke` and `keys reject` take effect
/// without a restart.
public final class EnrollmentAuthenticator: ZAPAuthenticator {
    private let store: EnrollmentStore
    private let pendingStore: PendingJoinStore
    private let logger: Logger

    struct Cache {
        var stamps: [String?] = []
        var tables = EnrollmentStore.Tables()
        var hosts: Set<String> = []
        var rejected: Set<CurvePublicKey> = []
        var loaded = false
    }

    private let cache = Mutex(Cache())

    /// Whether a handshake or ingest may reload the tables itself (files: a `stat`, then a read on a
    /// change); documents in a database are reloaded by ``EnrollmentStampService`` instead, so the ZAP
    /// handler never waits on the database.
    private let reloadsOnCaller: Bool

    public init(store: EnrollmentStore, pending: PendingJoinStore, reloadsOnCaller: Bool = true, logger: Logger) {
        self.store = store
        self.pendingStore = pending
        self.reloadsOnCaller = reloadsOnCaller
        self.logger = logger
        reload()
    }

    /// The policy over the enrollment files in `keysDir`.
    public convenience init(keysDir: String, logger: Logger) {
        self.init(backend: .files(keysDir: keysDir), logger: logger)
    }

    /// The policy over the enrollment documents wherever `backend` keeps them.
    public convenience init(backend: EnrollmentBackend, logger: Logger) {
        var files = true
        if case .postgres = backend { files = false }
        self.init(store: EnrollmentStore(backend), pending: PendingJoinStore(backend), reloadsOnCaller: files, logger: logger)
    }

    /// Reloads the tables if a file changed (for documents in a database, only ``reload()`` does).
    /// Returns the tables in force and the rejected keys.
    @discardableResult
    public func refresh() -> (tables: EnrollmentStore.Tables, rejected: Set<CurvePublicKey>) {
        guard reloadsOnCaller else { return cache.withLock { ($0.tables, $0.rejected) } }
        return reload()
    }

    /// Reloads the tables if a document changed, whoever calls.
    @discardableResult
    public func reload() -> (tables: EnrollmentStore.Tables, rejected: Set<CurvePublicKey>) {
        let stamps = [store.stamp(), pendingStore.stamp()]
        return cache.withLock { c in
            if c.loaded, c.stamps == stamps { return (c.tables, c.rejected) }
            do {
                c.tables = try store.tables()
                c.rejected = try pendingStore.rejectedKeys()
                c.hosts = Set(c.tables.active.values)
                c.stamps = stamps
                c.loaded = true
            } catch {
                // Keep the last good tables: a half-edited file must not lock the fleet out.
                logger.error("cannot reload enrollments; keeping the previous set", metadata: ["error": "\(error)"])
            }
            return (c.tables, c.rejected)
        }
    }

    /// Whether `host` is enrolled: ingest asks per peer and inbound batch, so a revoked host's
    /// connection, admitted before the revocation, is refused from its next message on. The files'
    /// stamps are looked at most every ``recheckNanoseconds`` here (a `stat` per batch was a noticeable
    /// share of ingest's CPU at 3.3k reports/s).
    public func isEnrolled(host: String) -> Bool {
        recheckIfDue()
        return cache.withLock { $0.hosts.contains(host) }
    }

    /// The host id `key` is enrolled for, if it is.
    public func host(for key: CurvePublicKey) -> String? {
        recheckIfDue()
        return cache.withLock { $0.tables.active[key] }
    }

    private func recheckIfDue() {
        let now = DispatchTime.now().uptimeNanoseconds
        if lastCheck.withLock({ last in
            guard now &- last >= Self.recheckNanoseconds else { return false }
            last = now
            return true
        }) {
            refresh()
        }
    }

    /// How stale ``isEnrolled(host:)`` may be: 50 ms.
    static let recheckNanoseconds: UInt64 = 50_000_000
    private let lastCheck = Mutex<UInt64>(0)

    public func authenticate(_ request: ZAPRequest) -> ZAPDecision {
        guard let key = request.clientKey else { return .deny(reason: "no CURVE key") }
        let (tables, rejected) = refresh()
        if let host = tables.active[key] { return .allow(hostID: host) }
        if tables.revoked.contains(key) { return .deny(reason: "key revoked") }
        if rejected.contains(key) { return .deny(reason: "key rejected by an operator") }
        return .allow(hostID: JoiningPeer.routingID(for: key))
    }
}
