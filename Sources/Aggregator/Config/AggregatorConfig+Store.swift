import Logging
import NIOCore
import RegwatchShared

extension AggregatorConfig {
    /// Opens the store `database` names: the SQLite file, or the PostgreSQL database with its password
    /// read now (so a rotated password takes effect at the next start). With `readOnly`, nothing is
    /// created or migrated (CLI commands that only look).
    public func openStore(configFile: String, readOnly: Bool = false, logger: Logger) throws -> any FleetStoring {
        guard let postgres else { return try FleetStore(path: database, readOnly: readOnly) }
        return try PostgresFleetStore(location: postgres, password: postgresPassword(configFile: configFile), readOnly: readOnly, logger: logger)
    }

    /// The leader lock `serve` competes for: PostgreSQL's advisory lock, or none to compete for on SQLite.
    /// A check that gets no answer within half the check interval counts as a lost lock.
    public func leaderLock(configFile: String, logger: Logger) throws -> any LeaderLock {
        guard let postgres else { return SoleLeaderLock() }
        return try PostgresAdvisoryLock(location: postgres, password: postgresPassword(configFile: configFile),
                                        timeout: TimeAmount(leaderCheckInterval / 2), logger: logger)
    }

    /// Where enrollments, tokens and pending joins are kept: the files in `keys.dir` beside an SQLite
    /// store, the shared database on PostgreSQL (every aggregator then sees the same ones).
    /// - Parameters:
    ///   - migrated: the database's migrations were applied already (`serve` opened the store);
    ///     otherwise opening the store applies them first,
    ///   - readOnly: unless the command only looks: then a database needing migrations is refused instead.
    public func enrollmentBackend(configFile: String, migrated: Bool = false, readOnly: Bool = false, logger: Logger) throws -> EnrollmentBackend {
        guard let postgres else { return .files(keysDir: keysDir) }
        let password = try postgresPassword(configFile: configFile)
        if !migrated { try PostgresFleetStore(location: postgres, password: password, readOnly: readOnly, logger: logger).close() }
        return .postgres(try PostgresDocuments(location: postgres, password: password, keysDir: keysDir, logger: logger))
    }

    /// The PostgreSQL password, read now; a problem with its file names the key that led to it.
    private func postgresPassword(configFile: String) throws(ConfigError) -> String? {
        do { return try postgres?.password(passwordFile: databasePasswordFile) } catch {
            throw ConfigError(file: configFile, key: databasePasswordFile == nil ? "database" : "databasePasswordFile", message: error.message)
        }
    }
}
