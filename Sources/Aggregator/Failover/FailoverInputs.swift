import Foundation
import RegwatchShared

/// Everything the failover controller looks at in one step, gathered by the service from the store and
/// the correlation engine. A plain value: the controller reads no clock and no database, so each rule can
/// be tested with hand-made inputs and a hand-set time.
public struct FailoverInputs: Sendable, Equatable {
    /// One host as the aggregator knows it from its latest report and its latest ack.
    public struct Host: Sendable, Equatable {
        public var id: String
        /// `zone` groups canaries (one per zone at least); `egress` selects the hosts of an exhausted quota.
        public var labels: [String: String]
        /// The host's mirror pools per registry in preferred order: its local allowlist, from its latest
        /// report. The controller only ever reorders or drops entries of these lists, so every directive
        /// passes the agent's allowlist check.
        public var mirrorPools: [String: [MirrorSpec]]
        /// The generation the host said it has applied in its latest report (0: never).
        public var appliedGeneration: UInt64
        /// When that report was received (aggregator clock). An ack newer than the report counts as
        /// applied; a report newer than the ack wins (an agent that lost its state is sent the directive
        /// again). Nil: unknown, the ack wins.
        public var reportedAt: Date?
        /// The latest ack received from the host.
        public var lastAck: Ack?
        /// The host has stopped reporting: it is not planned for, not sent to and not waited for.
        public var stale: Bool

        public init(
            id: String, labels: [String: String] = [:], mirrorPools: [String: [MirrorSpec]],
            appliedGeneration: UInt64 = 0, reportedAt: Date? = nil, lastAck: Ack? = nil, stale: Bool = false
        ) {
            self.id = id
            self.labels = labels
            self.mirrorPools = mirrorPools
            self.appliedGeneration = appliedGeneration
            self.reportedAt = reportedAt
            self.lastAck = lastAck
            self.stale = stale
        }

        /// A host from its latest report, received at `reportedAt`.
        public init(report: Report, reportedAt: Date?, lastAck: Ack? = nil, stale: Bool = false) {
            self.init(
                id: report.host.id, labels: report.host.labels, mirrorPools: report.mirrorPools,
                appliedGeneration: report.appliedGeneration, reportedAt: reportedAt, lastAck: lastAck, stale: stale)
        }

        public var zone: String? { labels["zone"] }
        public var egress: String? { labels["egress"] }
    }

    /// A host's answer to a directive, with the time the aggregator received it.
    public struct Ack: Sendable, Equatable {
        public var generation: UInt64
        public var outcome: FailoverAck.Outcome
        public var reason: String
        public var at: Date

        public init(generation: UInt64, outcome: FailoverAck.Outcome, reason: String = "", at: Date) {
            self.generation = generation
            self.outcome = outcome
            self.reason = reason
            self.at = at
        }

        public init(_ ack: FailoverAck, at: Date) {
            self.init(generation: ack.generation, outcome: ack.outcome, reason: ack.reason, at: at)
        }
    }

    /// An outage that has closed recently, with when it stopped (the `closed` transition's `at`, the
    /// first window of the absence). Lets failback wait exactly `recoveryHold` from the recovery; without
    /// it the controller dates the recovery from the first step that no longer sees the outage.
    public struct RecoveredOutage: Sendable, Equatable {
        public var key: OutageKey
        public var recoveredAt: Date

        public init(key: OutageKey, recoveredAt: Date) {
            self.key = key
            self.recoveredAt = recoveredAt
        }
    }

    /// The latest probe of one endpoint from one host: what canary verification reads.
    public struct Probe: Sendable, Equatable {
        public var host: String
        public var registry: String
        public var url: String
        public var errorClass: ErrorClass
        /// When the aggregator received it (the same clock as acks), so "after the ack" is well defined.
        public var observedAt: Date

        public init(host: String, registry: String, url: String, errorClass: ErrorClass, observedAt: Date) {
            self.host = host
            self.registry = registry
            self.url = url
            self.errorClass = errorClass
            self.observedAt = observedAt
        }

        /// The probe of a store row.
        public init(_ row: LatestStateRow) {
            self.init(
                host: row.hostID, registry: row.probe.endpoint.registry, url: row.probe.endpoint.url,
                errorClass: row.probe.errorClass, observedAt: row.observedAt)
        }

        public var healthy: Bool { errorClass.isHealthy }
    }

    public var hosts: [Host]
    /// The correlation engine's open outages (every kind; the controller picks those that call for failover).
    public var outages: [ActiveOutage]
    /// Outages closed recently (optional, see ``RecoveredOutage``).
    public var recovered: [RecoveredOutage]
    /// The latest probe per host × endpoint.
    public var probes: [Probe]

    public init(hosts: [Host], outages: [ActiveOutage] = [], recovered: [RecoveredOutage] = [], probes: [Probe] = []) {
        self.hosts = hosts
        self.outages = outages
        self.recovered = recovered
        self.probes = probes
    }
}
