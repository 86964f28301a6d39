import Logging
import ServiceLifecycle

/// Keeps the stamps of enrollment documents kept in PostgreSQL current, so that a key accepted, revoked
/// or rejected through another aggregator (or a CLI pointed at the database) takes effect here within
/// ``interval``. A file's stamp is a `stat`, cheap enough for every handshake; a database's is a query,
/// which the ZAP handler must not wait on, so it reads what this service last saw.
public struct EnrollmentStampService: Service {
    let backend: EnrollmentBackend
    /// Reloaded here when a stamp changed (nil without CURVE: nobody is authenticated).
    let authenticator: EnrollmentAuthenticator?
    let interval: Duration
    let logger: Logger

    public init(backend: EnrollmentBackend, authenticator: EnrollmentAuthenticator?, interval: Duration = .milliseconds(500), logger: Logger) {
        self.backend = backend
        self.authenticator = authenticator
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await StoreThreads.run { [backend, authenticator] () throws(KeysFileError) in
                    try backend.refreshStamps()
                    authenticator?.reload()
                }
                if failing { logger.notice("enrollment versions readable again") }
                failing = false
            } catch {
                // Once per failing spell: the enrollments in force stay those last read.
                if !failing { logger.error("cannot read enrollment versions; keeping the enrollments last read", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}
