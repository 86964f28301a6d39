import Logging
import RegwatchShared

extension AggregatorConfig {
    /// Opens the store `database` names: the SQLite file, or the PostgreSQL database with its password
    /// read now (so a rotated password takes effect at the next start). With `readOnly`, nothing is
    /// created or migrated (CLI commands that only look).
    public func openStore(configFile: String, readOnly: Bool = false, logger: Logger) throws -> any FleetStoring {
        guard let postgres else { return try FleetStore(path: database, readOnly: readOnly) }
        let password: String?
        do { password = try postgres.password(passwordFile: databasePasswordFile) } catch {
            throw ConfigError(file: configFile, key: databasePasswordFile == nil ? "database" : "databasePasswordFile", message: error.message)
        }
        return try PostgresFleetStore(location: postgres, password: password, readOnly: readOnly, logger: logger)
    }
}
