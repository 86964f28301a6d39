import Foundation
@testable import RegwatchAggregator
import RegwatchShared

/// A small simulated fleet for failover tests: agents that apply (or refuse, or ignore) what they are
/// sent, report their applied generation and probe their mirrors, all on a manual clock.
struct FailoverFleet {
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000)
    static let mirrorA = "https://mirror-a:5000"
    static let mirrorB = "https://mirror-b:5000"
    static let mirrorAuth = "https://mirror-auth:5000"
    static let hub = "https://registry-1.docker.io"
    /// docker.io: A, B, then the authenticated one; ghcr.io: B only.
    static let pools: [String: [MirrorSpec]] = [
        "docker.io": [MirrorSpec(url: mirrorA), MirrorSpec(url: mirrorB), MirrorSpec(url: mirrorAuth, authenticated: true)],
        "ghcr.io": [MirrorSpec(url: mirrorB)],
    ]
    static let preferred: [String: [String]] = ["docker.io": [mirrorA, mirrorB, mirrorAuth], "ghcr.io": [mirrorB]]
    static let withoutA: [String: [String]] = ["docker.io": [mirrorB, mirrorAuth], "ghcr.io": [mirrorB]]

    static func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    static func key(_ kind: OutageKind, _ endpoint: String = mirrorA, registry: String = "docker.io", egress: String? = nil) -> OutageKey {
        switch kind {
        case .rateLimitExhausted: OutageKey(kind: kind, endpoint: endpoint, registry: registry, egress: egress)
        case .hostLocal: OutageKey(kind: kind, host: "a1")
        case .zoneNetwork: OutageKey(kind: kind, zone: "z1")
        case .certExpiring: OutageKey(kind: kind, endpoint: endpoint)
        default: OutageKey(kind: kind, endpoint: endpoint, registry: registry)
        }
    }

    static func outage(_ key: OutageKey, since: Date = t0) -> ActiveOutage {
        ActiveOutage(candidate: OutageCandidate(key: key, errorClass: .tcpTimeout, affectedHosts: 6, totalHosts: 10), startedAt: since)
    }

    enum Behavior: Equatable { case apply, reject(String), fail(String), silent }

    struct Agent {
        var id: String
        var labels: [String: String]
        var pools: [String: [MirrorSpec]]
        var applied: UInt64 = 0
        var mirrors: [String: [String]]?
        var ack: FailoverInputs.Ack?
        var reportedAt: Date?
        var behavior: Behavior = .apply
        var stale = false
        /// Every directive received, in order.
        var received: [FailoverDirective] = []
    }

    var agents: [String: Agent] = [:]
    /// Probe class per URL (default ok), and per host × URL overrides.
    var health: [String: ErrorClass] = [:]
    var hostHealth: [String: [String: ErrorClass]] = [:]
    var probes: [FailoverInputs.Probe] = []
    var outages: [ActiveOutage] = []
    var recovered: [FailoverInputs.RecoveredOutage] = []

    /// `perZone` hosts in each zone: z1 hosts a1… behind nat-1, z2 hosts b1… behind nat-2.
    init(perZone: Int = 5, zones: [String] = ["z1", "z2"], pools: [String: [MirrorSpec]] = FailoverFleet.pools) {
        for (zi, zone) in zones.enumerated() {
            let letter = String(UnicodeScalar(UInt8(97 + zi)))
            for n in 1...perZone {
                let id = "\(letter)\(n)"
                agents[id] = Agent(id: id, labels: ["zone": zone, "egress": "nat-\(zi + 1)"], pools: pools)
            }
        }
    }

    var ids: [String] { agents.keys.sorted() }

    func inputs() -> FailoverInputs {
        FailoverInputs(
            hosts: ids.map { id in
                let a = agents[id]!
                return FailoverInputs.Host(
                    id: id, labels: a.labels, mirrorPools: a.pools, appliedGeneration: a.applied, reportedAt: a.reportedAt,
                    lastAck: a.ack, stale: a.stale)
            },
            outages: outages, recovered: recovered, probes: probes)
    }

    /// Agents handle the sends among `actions`, acking at `at`.
    mutating func deliver(_ actions: [FailoverAction], at: Date) {
        for case .send(let host, let d) in actions {
            guard var a = agents[host] else { continue }
            a.received.append(d)
            switch a.behavior {
            case .apply:
                if d.generation > a.applied {
                    a.applied = d.generation
                    a.mirrors = d.mirrors
                    a.ack = .init(generation: d.generation, outcome: .applied, at: at)
                } else {
                    a.ack = .init(generation: d.generation, outcome: .ignored, at: at)
                }
            case .reject(let why): a.ack = .init(generation: d.generation, outcome: .rejected, reason: why, at: at)
            case .fail(let why): a.ack = .init(generation: d.generation, outcome: .failed, reason: why, at: at)
            case .silent: break
            }
            agents[host] = a
        }
    }

    /// Every non-stale agent reports at `at`: its applied generation and a probe of each of its mirrors.
    mutating func report(at: Date) {
        probes.removeAll { p in agents[p.host].map { !$0.stale } ?? false }
        for id in ids where !agents[id]!.stale {
            agents[id]!.reportedAt = at
            for (registry, pool) in agents[id]!.pools {
                for m in pool {
                    let cls = hostHealth[id]?[m.url] ?? health[m.url] ?? .ok
                    probes.append(.init(host: id, registry: registry, url: m.url, errorClass: cls, observedAt: at))
                }
            }
        }
    }

    /// One window: the controller steps at `t`, agents handle the sends at `t + 1` and report at `t + 2`.
    @discardableResult
    mutating func cycle(_ controller: inout FailoverController, at t: Date) -> [FailoverAction] {
        let actions = controller.step(inputs(), now: t)
        deliver(actions, at: t.addingTimeInterval(1))
        report(at: t.addingTimeInterval(2))
        return actions
    }

    /// Runs windows every `every` seconds from `from` for `count` windows; all actions in order.
    @discardableResult
    mutating func run(_ controller: inout FailoverController, from: Double, count: Int, every: Double = 30) -> [FailoverAction] {
        (0..<count).flatMap { n in cycle(&controller, at: Self.at(from + Double(n) * every)) }
    }
}

extension Array where Element == FailoverAction {
    var sends: [(host: String, directive: FailoverDirective)] { compactMap(\.sent) }
    var sentHosts: [String] { sends.map(\.host).sorted() }
    var plannedPlans: [FailoverPlan] {
        compactMap { if case .planned(let p) = $0 { return p } else { return nil } }
    }
    var halts: [String] {
        compactMap { if case .halted(_, let r) = $0 { return r } else { return nil } }
    }
    var completedGenerations: [UInt64] {
        compactMap { if case .completed(let g) = $0 { return g } else { return nil } }
    }
}

extension FailoverSettings {
    /// Settings with short, round durations for tests.
    static func test(
        mode: AggregatorConfig.Failover.Mode = .auto, canaryShare: Double = 0.1, maxChanges: Int = 4,
        recoveryHold: TimeInterval = 300
    ) -> FailoverSettings {
        FailoverSettings(
            mode: mode, canaryShare: canaryShare, maxChangesPerHostPerHour: maxChanges, recoveryHold: recoveryHold,
            resendInterval: 60, canaryTimeout: 600, commandTTL: 600)
    }
}
