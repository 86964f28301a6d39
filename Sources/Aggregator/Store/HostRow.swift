import Foundation
import RegwatchShared

/// One host as `GET /api/v1/hosts` and `regwatch-aggregator hosts` show it.
///
/// `status` is derived at query time from an explicit `now`, so the same stored state reads as stale
/// once a host stops reporting, without any background job flipping flags.
public struct HostRow: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable, Equatable, CaseIterable {
        /// Reporting, every endpoint healthy, every runtime configuration valid.
        case ok
        /// Reporting, but some endpoint fails or some runtime configuration is invalid.
        case problems
        /// No report for more than `staleAfter` intervals: its stored state is no longer evidence.
        case stale
        /// Not stale yet, but silent for two of its intervals (connection state follows reports).
        case disconnected
    }

    public var id: String
    public var labels: [String: String]
    public var lastSeen: Date
    public var firstSeen: Date
    public var appliedGeneration: UInt64
    public var agentVersion: String
    public var intervalSeconds: Double
    public var connected: Bool
    /// The host's pull-event sources as last reported (an absent source means invisible pull failures).
    public var eventSources: [EventSourceStatus]
    /// The agent's pull-event spool as last reported; nil from agents that do not report it.
    public var spool: SpoolStatus?
    public var status: Status

    public init(
        id: String, labels: [String: String], lastSeen: Date, firstSeen: Date, appliedGeneration: UInt64,
        agentVersion: String, intervalSeconds: Double, connected: Bool, eventSources: [EventSourceStatus] = [],
        spool: SpoolStatus? = nil, status: Status
    ) {
        self.id = id
        self.labels = labels
        self.lastSeen = lastSeen
        self.firstSeen = firstSeen
        self.appliedGeneration = appliedGeneration
        self.agentVersion = agentVersion
        self.intervalSeconds = intervalSeconds
        self.connected = connected
        self.eventSources = eventSources
        self.spool = spool
        self.status = status
    }

    /// The status rule, shared by `hosts` and `status`: stale beats disconnected beats problems.
    static func status(now: Double, lastSeen: Double, intervalSeconds: Double, staleAfter: Int, connected: Bool, problems: Bool) -> Status {
        if isStale(now: now, lastSeen: lastSeen, intervalSeconds: intervalSeconds, staleAfter: staleAfter) { return .stale }
        if !connected { return .disconnected }
        return problems ? .problems : .ok
    }

    /// Stale: more than `staleAfter` of the host's own intervals since its last report.
    static func isStale(now: Double, lastSeen: Double, intervalSeconds: Double, staleAfter: Int) -> Bool {
        now - lastSeen > Double(staleAfter) * intervalSeconds
    }
}
