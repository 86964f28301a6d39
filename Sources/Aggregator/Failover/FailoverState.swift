import Foundation
import RegwatchShared

/// Everything the failover controller remembers between steps, and nothing else: the service persists
/// it (JSON) after each step and hands it back after a restart, so generations never go backwards, a
/// rollout resumes at its stage, the hourly budgets still hold and a recovery hold is not restarted.
public struct FailoverState: Codable, Sendable, Equatable {
    /// What the controller wants one host to run: the generation and the mirror map it carries.
    public struct Target: Codable, Sendable, Equatable {
        public var generation: UInt64
        public var mirrors: [String: [String]]
        public var reason: String

        public init(generation: UInt64, mirrors: [String: [String]], reason: String) {
            self.generation = generation
            self.mirrors = mirrors
            self.reason = reason
        }
    }

    /// One host's target and its send and change history.
    public struct HostRecord: Codable, Sendable, Equatable {
        /// Nil: never targeted, the host runs its own configuration (its preferred order, generation 0).
        public var target: Target?
        public var lastSentAt: Date?
        public var lastSentGeneration: UInt64
        /// When the target changed within the last hour: the hourly budget.
        public var changes: [Date]

        public init(target: Target? = nil, lastSentAt: Date? = nil, lastSentGeneration: UInt64 = 0, changes: [Date] = []) {
            self.target = target
            self.lastSentAt = lastSentAt
            self.lastSentGeneration = lastSentGeneration
            self.changes = changes
        }
    }

    /// An outage that moves mirror orders, open (`recoveredAt` nil) or recovered and within the hold.
    public struct TrackedOutage: Codable, Sendable, Equatable {
        public var key: OutageKey
        public var recoveredAt: Date?

        public init(key: OutageKey, recoveredAt: Date? = nil) {
            self.key = key
            self.recoveredAt = recoveredAt
        }
    }

    /// A mirror map whose canaries failed: not planned again while the same outages are in effect, or
    /// until an operator thaws (so a bad target does not loop halt → rollback → retry).
    public struct Block: Codable, Sendable, Equatable {
        public var mirrors: [String: [String]]
        public var generation: UInt64
        public var reason: String
        /// The outages in effect when it halted; a different set is new information and lifts the block.
        public var outages: [OutageKey]

        public init(mirrors: [String: [String]], generation: UInt64, reason: String, outages: [OutageKey]) {
            self.mirrors = mirrors
            self.generation = generation
            self.reason = reason
            self.outages = outages
        }
    }

    /// A change held back before it got a generation: its canaries' hourly budgets are spent.
    public struct Waiting: Codable, Sendable, Equatable {
        public var mirrors: [String: [String]]
        public var hosts: [String]
        public var until: Date

        public init(mirrors: [String: [String]], hosts: [String], until: Date) {
            self.mirrors = mirrors
            self.hosts = hosts
            self.until = until
        }
    }

    /// An operator's freeze.
    public struct Freeze: Codable, Sendable, Equatable {
        public var since: Date
        public var reason: String

        public init(since: Date, reason: String) {
            self.since = since
            self.reason = reason
        }
    }

    /// The highest generation issued (or seen applied by any host): the fleet-wide counter.
    public var generation: UInt64
    public var hosts: [String: HostRecord]
    /// Plans in generation order: live ones and the most recent finished ones.
    public var plans: [FailoverPlan]
    /// Outages in effect for failover, in key order.
    public var outages: [TrackedOutage]
    public var blocks: [Block]
    /// Changes waiting for canaries' budgets (as of the last step).
    public var waiting: [Waiting]
    public var frozen: Freeze?

    public init(
        generation: UInt64 = 0, hosts: [String: HostRecord] = [:], plans: [FailoverPlan] = [],
        outages: [TrackedOutage] = [], blocks: [Block] = [], waiting: [Waiting] = [], frozen: Freeze? = nil
    ) {
        self.generation = generation
        self.hosts = hosts
        self.plans = plans
        self.outages = outages
        self.blocks = blocks
        self.waiting = waiting
        self.frozen = frozen
    }
}
