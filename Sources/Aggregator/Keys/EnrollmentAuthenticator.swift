import Dispatch
import Logging
import RegwatchShared
import Synchronization

/// The ZAP policy of the aggregator: admit a CURVE client only if its key is actively enrolled, and
/// bind the connection to the enrolled host id.
///
/// It re-reads the enrollment file when its stamp changes (checked on each handshake, which is rare),
/// so `keys accept` and `keys revoke` take effect for new connections without a restart.
public final class EnrollmentAuthenticator: ZAPAuthenticator {
    private let store: EnrollmentStore
    private let logger: Logger
    private let cache = Mutex<(stamp: String?, table: [CurvePublicKey: String], hosts: Set<String>)>((nil, [:], []))

    public init(store: EnrollmentStore, logger: Logger) {
        self.store = store
        self.logger = logger
        _ = refresh()
    }

    /// Reloads the table if the file changed. Returns the table in force.
    @discardableResult
    public func refresh() -> [CurvePublicKey: String] {
        let stamp = store.fileStamp()
        return cache.withLock { c in
            if c.stamp == stamp, stamp != nil { return c.table }
            do {
                c.table = try store.activeTable()
                c.hosts = Set(c.table.values)
                c.stamp = stamp
            } catch {
                // Keep the last good table: a half-edited file must not lock the fleet out.
                logger.error("cannot reload enrollments; keeping the previous set", metadata: ["error": "\(error)"])
            }
            return c.table
        }
    }

    /// Whether `host` is enrolled: ingest asks per peer and inbound batch, so a revoked host's
    /// connection, admitted before the revocation, is refused from its next message on. The file's stamp
    /// is looked at most every ``recheckNanoseconds`` here (a `stat` per batch was a noticeable share of
    /// ingest's CPU at 3.3k reports/s), so a revocation takes effect within that much time.
    public func isEnrolled(host: String) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        if lastCheck.withLock({ last in
            guard now &- last >= Self.recheckNanoseconds else { return false }
            last = now
            return true
        }) {
            refresh()
        }
        return cache.withLock { $0.hosts.contains(host) }
    }

    /// How stale ``isEnrolled(host:)`` may be: 50 ms.
    static let recheckNanoseconds: UInt64 = 50_000_000
    private let lastCheck = Mutex<UInt64>(0)

    public func authenticate(_ request: ZAPRequest) -> ZAPDecision {
        guard let key = request.clientKey else { return .deny(reason: "no CURVE key") }
        guard let host = refresh()[key] else { return .deny(reason: "key not enrolled") }
        return .allow(hostID: host)
    }
}
