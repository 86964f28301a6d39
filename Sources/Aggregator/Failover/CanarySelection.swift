import Foundation

/// Which hosts of a plan get a change first.
///
/// `ceil(share × hosts)` hosts, and at least one per zone among the plan's hosts (a mirror reachable from
/// one zone may be firewalled from another; hosts without a zone label form one group). Hosts whose hourly
/// change budget is spent come last (a canary that cannot be switched only delays the verdict). Within
/// that, the order is a fixed hash of the host id: deterministic across restarts and aggregators, yet not
/// always the alphabetically first hosts of every zone.
public enum CanarySelection {
    public struct Candidate: Sendable, Equatable {
        public var id: String
        public var zone: String?
        /// The host may be switched now (its hourly budget is not spent).
        public var canSwitch: Bool

        public init(id: String, zone: String?, canSwitch: Bool = true) {
            self.id = id
            self.zone = zone
            self.canSwitch = canSwitch
        }
    }

    /// The number of canaries for `hosts` hosts before the per-zone minimum: `ceil(share × hosts)`, at least 1.
    public static func count(hosts: Int, share: Double) -> Int {
        guard hosts > 0 else { return 0 }
        // The epsilon keeps 0.1 × 30 (3.0000000000000004 in binary) at 3.
        let n = Int((Double(hosts) * max(0, min(1, share)) - 1e-9).rounded(.up))
        return min(hosts, max(1, n))
    }

    /// The canaries among `candidates`.
    public static func choose(_ candidates: [Candidate], share: Double) -> Set<String> {
        let ordered = candidates.sorted { a, b in
            if a.canSwitch != b.canSwitch { return a.canSwitch }
            let ha = fnv1a(a.id), hb = fnv1a(b.id)
            return ha != hb ? ha < hb : a.id < b.id
        }
        var chosen = Set<String>()
        var zonesCovered = Set<String>()
        for c in ordered where !zonesCovered.contains(c.zone ?? "") {
            zonesCovered.insert(c.zone ?? "")
            chosen.insert(c.id)
        }
        let target = count(hosts: candidates.count, share: share)
        for c in ordered where chosen.count < target { chosen.insert(c.id) }
        return chosen
    }

    /// 64-bit FNV-1a: stable across runs and platforms, unlike `Hasher`.
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01b3
        }
        return h
    }
}
