// regwatch-correlation-bench: one correlation window for a large fleet (default 10k hosts x 10 endpoints,
// 4 zones, 20 egress groups, one mirror down everywhere and one zone cut off), timed three ways in the
// same run: the store query that feeds it (latest state per host x endpoint from a real SQLite file),
// the detection + engine step, and a reference pass that only groups the same rows by endpoint (the
// least any correlation must do). Goal: a window's work well under the window (30 s).
import Foundation
import RegwatchAggregator
import RegwatchShared

let args = CommandLine.arguments
let hosts = args.firstIndex(of: "--hosts").flatMap { Int(args[$0 + 1]) } ?? 10_000
let endpointCount = args.firstIndex(of: "--endpoints").flatMap { Int(args[$0 + 1]) } ?? 10

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

let now = Date()
let endpoints = (0..<endpointCount).map { i in
    Endpoint(registry: "docker.io", url: i == 0 ? "https://registry-1.docker.io" : "https://mirror-\(i).example:5000", role: i == 0 ? .upstream : .mirror)
}
func probe(_ e: Endpoint, _ cls: ErrorClass, _ host: Int) -> ProbeResult {
    ProbeResult(endpoint: e, errorClass: cls, detail: cls == .ok ? "" : "dial tcp 10.0.0.5:5000: i/o timeout",
                phases: PhaseTimings(dnsMs: 1, connectMs: 2, tlsMs: 5, ttfbMs: 9, totalMs: 12 + Double(host % 7)),
                rateLimit: e.role == .upstream ? RateLimitState(limit: 100, remaining: 50, windowSeconds: 21600) : nil,
                manifest: ManifestState(reference: "library/alpine:3.20", status: cls == .ok ? 200 : nil), checkedAt: now)
}

// The fleet as reports: mirror-1 is down for everyone, zone z3 cannot reach anything.
var reports: [Report] = []
for h in 0..<hosts {
    let zone = "z\(h % 4)"
    let probes = endpoints.enumerated().map { i, e -> ProbeResult in
        let cls: ErrorClass = (zone == "z3") ? .tcpTimeout : (i == 1 ? .tcpTimeout : .ok)
        return probe(e, cls, h)
    }
    reports.append(Report(host: HostIdentity(id: "host-\(h)", labels: ["zone": zone, "egress": "198.51.100.\(h % 20)"]), agentVersion: "bench",
                          cycleStartedAt: now, intervalSeconds: 30, probes: probes,
                          mirrorPools: ["docker.io": endpoints.dropFirst().map { MirrorSpec(url: $0.url, trusted: true) }]))
}

let dir = NSTemporaryDirectory() + "rw-corr-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }
let store = try FleetStore(path: "\(dir)/regwatch.db")
for chunk in stride(from: 0, to: reports.count, by: 1000) {
    var batch = IngestBatch()
    for (i, r) in reports[chunk..<min(chunk + 1000, reports.count)].enumerated() {
        batch.append(report: r, hostID: r.host.id, seq: UInt64(chunk + i + 1), receivedAt: now)
    }
    _ = try store.commit(batch)
}

var rows: [LatestStateRow] = []
var query: [Double] = [], detect: [Double] = [], reference: [Double] = []
var engine = CorrelationEngine(settings: CorrelationSettings())
var opened = 0
for round in 0..<5 {
    query.append(try seconds { rows = try store.latestStates(now: now, staleAfter: 3) })
    detect.append(seconds {
        let transitions = engine.evaluate(rows: rows, now: now.addingTimeInterval(Double(round) * 30))
        opened += transitions.filter { if case .opened = $0 { true } else { false } }.count
    })
    reference.append(seconds {
        var failing: [String: Int] = [:]
        for r in rows where r.probe.errorClass != .ok && !r.stale { failing[r.probe.endpoint.url, default: 0] += 1 }
        precondition(!failing.isEmpty)
    })
}
func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
let (q, d, r) = (median(query), median(detect), median(reference))
print("correlation window: \(hosts) hosts x \(endpointCount) endpoints = \(rows.count) rows; outages opened over 5 windows: \(opened) (\(engine.active.keys.map(\.kind.rawValue).sorted().joined(separator: ", ")))")
print(String(format: "  store query (latest state)   %8.1f ms", q * 1000))
print(String(format: "  detection + engine           %8.1f ms   %.1fx the reference grouping pass (%.1f ms)", d * 1000, d / r, r * 1000))
print(String(format: "  whole window                 %8.1f ms   = %.2f%% of a 30 s window (goal: well under it)", (q + d) * 1000, (q + d) / 30 * 100))

// The failover controller's step on the same fleet, with the outages the engine opened: the inputs read
// from the store (hosts with their pools, latest probes) and the controller's decision (plan, canaries,
// sends). The first step plans the generation; the later ones are the steady state (re-send checks).
let settings = FailoverSettings()
var controller = FailoverController(settings: settings)
var gather: [Double] = [], decide: [Double] = []
var sends = 0
for round in 0..<5 {
    var inputs = FailoverInputs(hosts: [])
    gather.append(try seconds {
        inputs = FailoverInputs(
            hosts: try store.failoverHosts(now: now, staleAfter: 3, acks: [:]), outages: Array(engine.active.values),
            probes: try store.latestStates(now: now, staleAfter: 3).map(FailoverInputs.Probe.init))
    })
    decide.append(seconds {
        sends += controller.step(inputs, now: now.addingTimeInterval(Double(round) * 30)).filter { $0.sent != nil }.count
    })
}
let (g, f) = (median(gather), median(decide))
print(String(format: "  failover inputs from store   %8.1f ms", g * 1000))
print(String(format: "  failover controller step     %8.1f ms   (generation %llu, %d directives over 5 steps; first step %.1f ms)",
             f * 1000, controller.generation, sends, decide[0] * 1000))
print(String(format: "  correlation + failover       %8.1f ms   = %.2f%% of a 30 s window", (q + d + g + f) * 1000, (q + d + g + f) / 30 * 100))
