import Foundation
import RegwatchShared

/// What one controller step asks the service to do or to record. Only ``send(host:directive:)`` touches
/// the fleet (the service signs the directive and routes it to the host); the rest are for logs, the
/// outage timeline, webhooks and the demo's narration.
public enum FailoverAction: Sendable, Equatable {
    /// A new generation. In `auto` mode its first sends follow in the same step; in `advise` mode it
    /// is only shown.
    case planned(FailoverPlan)
    /// Sign and send this directive to this host (a first send or a re-send with fresh times).
    case send(host: String, directive: FailoverDirective)
    /// The canaries acked and their probes of the new first mirrors were healthy: the rest follow.
    case stageAdvanced(generation: UInt64, to: FailoverPlan.State)
    /// The canaries failed (rejected, failed to apply, unhealthy probe, or timeout): nothing more is
    /// sent for this generation and its mirror map is not planned again while the outages stay the same.
    case halted(generation: UInt64, reason: String)
    /// A halted generation's canaries get their previous order back through `rollback`.
    case rolledBack(generation: UInt64, rollback: UInt64)
    /// Every non-stale host of the generation applied it.
    case completed(generation: UInt64)
    /// A newer generation took over hosts of this one (`by`), or its hosts no longer want it (nil: the
    /// outage it answered ended before it was rolled out).
    case superseded(generation: UInt64, by: UInt64?)
    /// These hosts' switch waits for their hourly change budget, until `until`: within a plan
    /// (`generation`), or before any plan when its canaries cannot be switched yet (nil; reported once
    /// while the same change keeps waiting).
    case deferred(generation: UInt64?, hosts: [String], until: Date)

    /// The host and directive of a send, nil for other actions.
    public var sent: (host: String, directive: FailoverDirective)? {
        if case .send(let host, let directive) = self { return (host, directive) }
        return nil
    }
}
