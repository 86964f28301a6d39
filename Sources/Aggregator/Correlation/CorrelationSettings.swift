/// Every threshold correlation uses, in one value so that a rule can be tested with any setting and the
/// configuration file maps onto it key by key.
///
/// The first six come from `correlation:` in the aggregator configuration (contract keys); the rest are
/// the thresholds behind the words of docs/correlation.md ("most endpoints", "under a threshold", "the warning
/// window") with defaults chosen here and documented at each property.
public struct CorrelationSettings: Sendable, Equatable {
    /// Length of one evaluation window (the engine is called once per window).
    public var window: Duration
    /// Consecutive windows a candidate must be present before its outage opens (Prometheus `for`).
    public var openAfter: Int
    /// How long an open outage must stay absent before it closes (Prometheus `keep_firing_for`).
    public var recoveryHold: Duration
    /// Fleet quorum: hosts that must agree before an endpoint-scoped outage opens.
    public var minHosts: Int
    /// Fleet quorum: zones those hosts must span, when the reporting hosts carry zone labels.
    public var minZones: Int
    /// Missed report intervals after which a host is stale (applied by the store when it builds rows).
    public var staleAfter: Int

    /// "Most endpoints": a host failing at least this share of its endpoints is broken as a vantage point
    /// (candidate for `host_local`, and counted as failing by `zone_network`). Default 0.6.
    public var hostLocalShare: Double = 0.6
    /// "The hosts of one zone": at least this share of a zone's hosts must be broken for `zone_network`.
    /// Default 0.6 (2 of 3, 3 of 4; 2 of 4 is two host problems, not a zone).
    public var zoneFailShare: Double = 0.6
    /// Broken hosts a zone needs at least, whatever its size: one host is never a zone. Default 2.
    public var zoneMinHosts: Int = 2
    /// Of the hosts that probe an endpoint (after host- and zone-local hosts are set aside), at least this
    /// share must fail it for an endpoint-scoped outage, besides `minHosts`/`minZones`: three failing hosts
    /// out of two hundred are a partial problem, not a reason to move the fleet. Default 0.5.
    public var endpointFailShare: Double = 0.5
    /// An egress group counts as exhausted on an endpoint when a host's probe is `rate_limited` or its
    /// `ratelimit-remaining` is below this. Default 10 (a handful of pulls left: a deploy will stall).
    public var rateLimitThreshold: Int = 10
    /// `cert_expiring` opens when a certificate expires within this many days (expired ones included).
    /// Default 14.
    public var certWarningDays: Int = 14
    /// Evidence samples kept per candidate. Default 5.
    public var evidenceLimit: Int = 5

    public init(
        window: Duration = .seconds(30), openAfter: Int = 2, recoveryHold: Duration = .seconds(300),
        minHosts: Int = 3, minZones: Int = 2, staleAfter: Int = 3
    ) {
        self.window = window
        self.openAfter = openAfter
        self.recoveryHold = recoveryHold
        self.minHosts = minHosts
        self.minZones = minZones
        self.staleAfter = staleAfter
    }

    /// Every threshold from the configuration file's `correlation:` section.
    public init(_ c: AggregatorConfig.Correlation) {
        self.init(
            window: c.window, openAfter: c.openAfter, recoveryHold: c.recoveryHold,
            minHosts: c.minHosts, minZones: c.minZones, staleAfter: c.staleAfter)
        hostLocalShare = c.hostLocalShare
        zoneFailShare = c.zoneFailShare
        zoneMinHosts = c.zoneMinHosts
        endpointFailShare = c.endpointFailShare
        rateLimitThreshold = c.rateLimitThreshold
        certWarningDays = c.certWarningDays
    }

    /// `recoveryHold` in seconds, for arithmetic with `Date`.
    var recoveryHoldSeconds: Double { recoveryHold.seconds }

    /// `window` in seconds.
    var windowSeconds: Double { window.seconds }
}
