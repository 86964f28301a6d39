import Foundation

/// One generation: a desired mirror order for a set of hosts, and how far its rollout got.
///
/// A generation carries exactly one mirror map, so `GET /api/v1/failovers` can show `mirrors` for it
/// without ambiguity; hosts that need different maps at the same moment (another pool, an exhausted
/// egress) get separate generations from the same fleet-wide counter, each rolled out on its own.
public struct FailoverPlan: Codable, Sendable, Equatable {
    /// The `state` field of `GET /api/v1/failovers`.
    public enum State: String, Codable, Sendable, CaseIterable {
        /// Sent to the canaries; the others wait for their acks and probes.
        case canary
        /// Sent (or being sent, as the hourly budget allows) to every host of the plan.
        case rolling
        /// Every non-stale host of the plan applied it.
        case complete
        /// Canaries failed and nothing was applied by them, so there is nothing to roll back.
        case halted
        /// Canaries failed; a rollback generation restored their previous order.
        case rolledBack = "rolled_back"
        /// A newer generation took over its hosts before it finished.
        case superseded
        /// Planned in `advise` mode: shown, never sent.
        case advised

        /// Still moving hosts (or, for `advised`, still the current advice).
        public var isLive: Bool { self == .canary || self == .rolling || self == .advised }
    }

    /// Why the generation exists.
    public enum Kind: String, Codable, Sendable {
        /// Away from unhealthy mirrors, or authenticated mirrors first for an exhausted egress.
        case failover
        /// Back to the preferred order after the recovery hold.
        case failback
        /// Canaries of a halted plan back to the order they had.
        case rollback
    }

    /// A host's part in the plan.
    public struct HostProgress: Codable, Sendable, Equatable {
        public enum Role: String, Codable, Sendable { case canary, rest }

        public var role: Role
        /// When the host's target became this generation (nil: not yet, its stage has not started or its
        /// hourly budget is spent).
        public var switchedAt: Date?
        /// The order the host had before the switch, restored if the canaries fail (nil: unknown, the
        /// preferred order is restored).
        public var previous: [String: [String]]?
        /// The host's target before the switch (nil: it had none), given back without a new generation
        /// when the agent refused this plan and so still runs it.
        public var previousTarget: FailoverState.Target?
        /// Set while the hourly budget holds the switch back: the earliest time it can happen.
        public var deferredUntil: Date?
        /// When the controller learned the host applied it (the ack's time, or the step that saw the report).
        public var appliedAt: Date?
        /// When a probe after `appliedAt` showed the new first mirrors healthy (canaries only).
        public var verifiedAt: Date?
        /// The agent's reason when it rejected or failed to apply this generation.
        public var rejected: String?

        public init(role: Role) { self.role = role }
    }

    public var generation: UInt64
    public var kind: Kind
    public var state: State
    public var reason: String
    /// Mirrors per registry in the order the runtimes should try them.
    public var mirrors: [String: [String]]
    public var createdAt: Date
    /// When the current stage began (for the canary timeout).
    public var stageStartedAt: Date
    /// When it reached a final state.
    public var finishedAt: Date?
    /// Why it halted (also part of `reason` once halted).
    public var haltReason: String?
    /// The generation that superseded it (if any), or the first rollback generation.
    public var followedBy: UInt64?
    /// The generation a rollback plan undoes.
    public var rollbackOf: UInt64?
    /// Per host, while the plan is live. Cleared when it finishes (the counts stay), so that a long
    /// history of a large fleet stays small in the persisted state.
    public var hosts: [String: HostProgress]
    /// Hosts that applied it.
    public var acked: Int
    /// Hosts that have not applied it yet (including deferred and not yet switched ones).
    public var pending: Int
    /// Hosts whose agent rejected it or failed to apply it.
    public var rejected: Int

    public init(
        generation: UInt64, kind: Kind, state: State, reason: String, mirrors: [String: [String]], createdAt: Date,
        hosts: [String: HostProgress]
    ) {
        self.generation = generation
        self.kind = kind
        self.state = state
        self.reason = reason
        self.mirrors = mirrors
        self.createdAt = createdAt
        self.stageStartedAt = createdAt
        self.hosts = hosts
        self.acked = 0
        self.pending = hosts.count
        self.rejected = 0
    }

    /// The canary hosts, sorted.
    public var canaries: [String] { hosts.filter { $0.value.role == .canary }.map(\.key).sorted() }

    /// The fields of `GET /api/v1/failovers`.
    public var summary: Summary {
        Summary(generation: generation, state: state, reason: reason, mirrors: mirrors, acked: acked, pending: pending, rejected: rejected)
    }

    /// One element of `GET /api/v1/failovers` (contract, docs/api.md), encoded with exactly these keys.
    public struct Summary: Codable, Sendable, Equatable {
        public var generation: UInt64
        public var state: State
        public var reason: String
        public var mirrors: [String: [String]]
        /// Host counts.
        public var acked: Int
        public var pending: Int
        public var rejected: Int
    }
}
