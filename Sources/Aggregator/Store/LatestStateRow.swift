import Foundation
import RegwatchShared

/// One host's latest probe of one endpoint, with the host's labels and freshness: the input of the
/// correlation engine, which groups these by endpoint, class, zone and egress.
///
/// The probe is given back as the wire type it arrived in (`ProbeResult`), so correlation reads the
/// same fields the agent measured. `stale` is decided at query time against `now`.
public struct LatestStateRow: Codable, Sendable, Equatable {
    public var hostID: String
    public var labels: [String: String]
    public var probe: ProbeResult
    /// When the aggregator received the report that carried this probe.
    public var observedAt: Date
    public var hostLastSeen: Date
    /// The host has not reported for more than `staleAfter` of its intervals.
    public var stale: Bool
    /// When the first report with this probe's current class arrived (nil: unknown, `observedAt` is the
    /// best guess): how long this host has been seeing what it sees now.
    public var classSince: Date?

    public init(
        hostID: String, labels: [String: String], probe: ProbeResult, observedAt: Date, hostLastSeen: Date, stale: Bool, classSince: Date? = nil
    ) {
        self.classSince = classSince
        self.hostID = hostID
        self.labels = labels
        self.probe = probe
        self.observedAt = observedAt
        self.hostLastSeen = hostLastSeen
        self.stale = stale
    }

    public var zone: String? { labels["zone"] }
    public var egress: String? { labels["egress"] }
}
