import Foundation

/// A summary of the fleet database for `regwatch-aggregator status`: is the file the one expected, how
/// big is it, how much does it hold.
public struct StoreStatus: Codable, Sendable, Equatable {
    public var path: String
    /// The last migration applied (`v1`, …).
    public var schemaVersion: String
    public var hosts: Int
    public var hostsStale: Int
    public var hostsConnected: Int
    public var endpointStates: Int
    public var probeSamples: Int
    public var probeMinutes: Int
    public var pullEvents: Int
    /// Outages without an end time.
    public var activeOutages: Int
    /// Pages in use times page size: the database's logical size, committed WAL content included.
    public var databaseBytes: Int64
    /// Current size of the `-wal` file on disk (0 after a truncating checkpoint).
    public var walBytes: Int64

    public init(
        path: String, schemaVersion: String, hosts: Int, hostsStale: Int, hostsConnected: Int, endpointStates: Int,
        probeSamples: Int, probeMinutes: Int, pullEvents: Int, activeOutages: Int, databaseBytes: Int64, walBytes: Int64
    ) {
        self.path = path
        self.schemaVersion = schemaVersion
        self.hosts = hosts
        self.hostsStale = hostsStale
        self.hostsConnected = hostsConnected
        self.endpointStates = endpointStates
        self.probeSamples = probeSamples
        self.probeMinutes = probeMinutes
        self.pullEvents = pullEvents
        self.activeOutages = activeOutages
        self.databaseBytes = databaseBytes
        self.walBytes = walBytes
    }
}
