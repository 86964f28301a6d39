import FoundationEssentials

/// A full snapshot of one host's view, sent every cycle. Reports are idempotent state: the newest wins,
/// so losing one costs nothing but freshness.
public struct Report: Codable, Sendable, Hashable {
    public var host: HostIdentity
    public var agentVersion: String
    /// When this cycle started on the agent.
    public var cycleStartedAt: Date
    /// The probe interval the agent runs with, so the aggregator can tell a stale host from a slow one.
    public var intervalSeconds: Double
    public var probes: [ProbeResult]
    public var runtimes: [RuntimeConfigState]
    /// The highest failover generation this host has applied (0: never).
    public var appliedGeneration: UInt64
    /// The mirror pools declared on this host (its local allowlist), per registry, in preferred order.
    public var mirrorPools: [String: [MirrorSpec]]
    /// The pull-event sources and whether each works on this host.
    public var eventSources: [EventSourceStatus]
    /// The pull-event spool; nil from agents older than this field.
    public var spool: SpoolStatus?

    public init(
        host: HostIdentity, agentVersion: String, cycleStartedAt: Date, intervalSeconds: Double,
        probes: [ProbeResult], runtimes: [RuntimeConfigState] = [], appliedGeneration: UInt64 = 0,
        mirrorPools: [String: [MirrorSpec]] = [:], eventSources: [EventSourceStatus] = [], spool: SpoolStatus? = nil
    ) {
        self.host = host
        self.agentVersion = agentVersion
        self.cycleStartedAt = cycleStartedAt
        self.intervalSeconds = intervalSeconds
        self.probes = probes
        self.runtimes = runtimes
        self.appliedGeneration = appliedGeneration
        self.mirrorPools = mirrorPools
        self.eventSources = eventSources
        self.spool = spool
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decode(HostIdentity.self, forKey: .host)
        agentVersion = try c.decodeIfPresent(String.self, forKey: .agentVersion) ?? "unknown"
        cycleStartedAt = try c.decode(Date.self, forKey: .cycleStartedAt)
        intervalSeconds = try c.decodeIfPresent(Double.self, forKey: .intervalSeconds) ?? 30
        probes = try c.decodeIfPresent([ProbeResult].self, forKey: .probes) ?? []
        runtimes = try c.decodeIfPresent([RuntimeConfigState].self, forKey: .runtimes) ?? []
        appliedGeneration = try c.decodeIfPresent(UInt64.self, forKey: .appliedGeneration) ?? 0
        mirrorPools = try c.decodeIfPresent([String: [MirrorSpec]].self, forKey: .mirrorPools) ?? [:]
        eventSources = try c.decodeIfPresent([EventSourceStatus].self, forKey: .eventSources) ?? []
        spool = try c.decodeIfPresent(SpoolStatus.self, forKey: .spool)
    }
}

extension Report: WireBody {
    public static let messageType = MessageType.report
}
