import Foundation
import RegwatchShared

extension FailoverController {
    /// What an aggregator that does not lead sends on the leader's behalf to the hosts connected to it:
    /// the targets the leader committed, to live hosts that have not applied them, at most once per
    /// `resendInterval` per host (`lastSent`, the follower's own memory). It plans nothing and changes
    /// no state, so it can only repeat what the store already holds; a frozen state sends nothing.
    public func followerSends(_ inputs: FailoverInputs, now: Date, lastSent: [String: (generation: UInt64, at: Date)])
        -> [(host: String, directive: FailoverDirective)] {
        guard !isFrozen else { return [] }
        let hosts = Dictionary(inputs.hosts.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [(host: String, directive: FailoverDirective)] = []
        for id in state.hosts.keys.sorted() {
            guard let target = state.hosts[id]?.target, target.generation > 0, let h = hosts[id], !h.stale,
                  !Self.hasApplied(h, target.generation), isDue(target, lastSent: lastSent[id], now: now) else { continue }
            out.append((id, directive(target, for: id, now: now)))
        }
        return out
    }
}
