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
                  !Self.hasApplied(h, target.generation) else { continue }
            if let last = lastSent[id], last.generation == target.generation, now.timeIntervalSince(last.at) < settings.resendInterval { continue }
            out.append((id, FailoverDirective(
                generation: target.generation, issuedAt: now, expiresAt: now.addingTimeInterval(settings.commandTTL),
                target: id, mirrors: target.mirrors, reason: target.reason)))
        }
        return out
    }
}
