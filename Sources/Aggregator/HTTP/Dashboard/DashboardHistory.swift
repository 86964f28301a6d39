import Foundation

/// What the dashboard draws over time, read from the store for the window ending now: outages that
/// were active in it, per-minute probe roll-ups (latency quantiles) and per-minute quota per egress.
/// Failover generations come from the controller, which keeps them all.
public struct DashboardHistory: Sendable {
    /// The window the charts span.
    public static let window: TimeInterval = 24 * 3600

    public var since: Date
    public var outages: [OutageRow]
    public var minutes: [ProbeMinuteRow]
    public var headroom: [HeadroomMinuteRow]

    public init(since: Date, outages: [OutageRow] = [], minutes: [ProbeMinuteRow] = [], headroom: [HeadroomMinuteRow] = []) {
        self.since = since
        self.outages = outages
        self.minutes = minutes
        self.headroom = headroom
    }
}
