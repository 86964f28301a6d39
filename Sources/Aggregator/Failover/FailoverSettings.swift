import Foundation

/// Every knob the failover controller uses, in one value so that each rule can be tested with any setting.
///
/// They come from `failover:` in the aggregator configuration and the recovery hold from `correlation:`;
/// the durations are the ones behind the words of docs/failover.md ("re-sends until it
/// converges", "canaries … otherwise halt") with defaults chosen here and documented at each property.
/// Settings are not persisted with ``FailoverState``: a restart takes them from the configuration again, so
/// a changed mode or share applies to the running rollouts too.
public struct FailoverSettings: Sendable, Equatable {
    /// `auto` sends directives; `advise` only plans (the operator reads the plans and acts by hand).
    public var mode: AggregatorConfig.Failover.Mode
    /// Share of a plan's hosts that get the change first. Default 0.1.
    public var canaryShare: Double
    /// Distinct generations a host may be switched to in any sliding hour (also enforced by the agent,
    /// whatever is signed, so sending more would only earn rejections). Default 4; below 1 counts as 1.
    public var maxChangesPerHostPerHour: Int
    /// How long a mirror must have been healthy again (its outage absent) before failback. A value from
    /// `correlation.recoveryHold` (default 5 min).
    public var recoveryHold: TimeInterval
    /// A host that has not converged on its target is sent the directive again after this long: lost
    /// messages and restarts on either side heal by themselves. Default 60 s (two report intervals).
    public var resendInterval: TimeInterval
    /// Canaries that have not all acked and been verified by a probe after this long halt the rollout.
    /// Default 600 s (enough for a few agent cycles, a runtime reload and a probe).
    public var canaryTimeout: TimeInterval
    /// A directive's `expiresAt` is its `issuedAt` plus this: a command delayed in a queue or replayed
    /// later is refused by the agent. Every (re)send gets fresh times. Default 600 s.
    public var commandTTL: TimeInterval
    /// Finished plans kept for `GET /api/v1/failovers` (live ones are always kept). Default 50.
    public var historyLimit: Int

    public init(
        mode: AggregatorConfig.Failover.Mode = .auto, canaryShare: Double = 0.1, maxChangesPerHostPerHour: Int = 4,
        recoveryHold: TimeInterval = 300, resendInterval: TimeInterval = 60, canaryTimeout: TimeInterval = 600,
        commandTTL: TimeInterval = 600, historyLimit: Int = 50
    ) {
        self.mode = mode
        self.canaryShare = canaryShare
        self.maxChangesPerHostPerHour = maxChangesPerHostPerHour
        self.recoveryHold = recoveryHold
        self.resendInterval = resendInterval
        self.canaryTimeout = canaryTimeout
        self.commandTTL = commandTTL
        self.historyLimit = historyLimit
    }

    /// The settings of a configuration file: `failover:` plus `correlation.recoveryHold`.
    public init(_ failover: AggregatorConfig.Failover, correlation: AggregatorConfig.Correlation) {
        self.init(
            mode: failover.mode, canaryShare: failover.canaryShare,
            maxChangesPerHostPerHour: failover.maxChangesPerHostPerHour,
            recoveryHold: correlation.recoveryHold.seconds, resendInterval: failover.resendInterval.seconds,
            canaryTimeout: failover.canaryTimeout.seconds, commandTTL: failover.commandTTL.seconds)
    }

    /// The hourly budget as used: at least one change.
    var changeBudget: Int { max(1, maxChangesPerHostPerHour) }
}
