import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// Several aggregators sharing one PostgreSQL database, inside a ``FailoverLab``'s namespace (only `lo`):
/// the lab's registries and hosts, a throwaway PostgreSQL in the namespace, and aggregator `i` on ZeroMQ
/// port 7450+2i and HTTP port 7451+2i. Each aggregator reaches PostgreSQL at a loopback address of its
/// own, 127.0.0.(11+i), so nftables can cut one of them off the database while agents still reach it.
/// Agents list every aggregator; each host's kubelet log gets pull failures from ``PullLogWriters``.
final class HALab: @unchecked Sendable {
    let lab: FailoverLab
    let pg: PostgresServer
    let count: Int
    private(set) var processes: [Int: Process] = [:]
    var dir: String { lab.dir }

    func zmqPort(_ i: Int) -> Int { 7450 + 2 * i }
    func httpPort(_ i: Int) -> Int { 7451 + 2 * i }
    func dbAddress(_ i: Int) -> String { "127.0.0.\(11 + i)" }
    func config(_ i: Int) -> String { "\(dir)/aggregator-\(i).yaml" }
    func log(_ i: Int) -> String { "\(dir)/aggregator-\(i).log" }
    func kubeletLog(_ id: String) -> String { "\(dir)/\(id)/kubelet.log" }

    /// - Parameter leader: the aggregators' `leader:` section.
    init(aggregators: Int, mirrorNames: [String], correlation: String, failover: String, leader: String) throws {
        count = aggregators
        lab = try FailoverLab(mirrorNames: mirrorNames, correlation: correlation, failover: failover)
        do {
            pg = try PostgresServer("ha", netns: lab.ns)
            let base = try String(contentsOfFile: "\(lab.dir)/aggregator.yaml", encoding: .utf8)
            for i in 0..<aggregators {
                let yaml = base
                    .replacingOccurrences(of: "tcp://127.0.0.1:\(lab.zmqPort)", with: "tcp://127.0.0.1:\(zmqPort(i))")
                    .replacingOccurrences(of: "http: \"127.0.0.1:\(lab.httpPort)\"", with: "http: \"127.0.0.1:\(httpPort(i))\"")
                    .replacingOccurrences(of: "database: \(lab.dir)/regwatch.db",
                                          with: "database: \(pg.url(host: dbAddress(i)))\ndatabasePasswordFile: \(pg.passwordFile)")
                    + "\nleader: \(leader)\n"
                try #require(yaml.contains("127.0.0.1:\(httpPort(i))") && yaml.contains("postgres://"), "\(yaml)")
                try yaml.write(toFile: config(i), atomically: true, encoding: .utf8)
            }
        } catch {
            lab.tearDown()
            throw error
        }
    }

    /// A host without dockerd (containerd `certs.d` and CRI-O `registries.conf`), listing every
    /// aggregator, with a kubelet log the agent tails.
    func addHost(_ id: String, zone: String) throws {
        try lab.addHost(id, zone: zone, docker: false,
                        events: "{docker: false, journalUnits: [], files: [\(kubeletLog(id))], filePoll: 100ms, resendAfter: 1s, spoolMaxBytes: 268435456}")
        FileManager.default.createFile(atPath: kubeletLog(id), contents: nil)
        let path = "\(dir)/\(id)/agent.yaml"
        let endpoints = (0..<count).map { "\"tcp://127.0.0.1:\(zmqPort($0))\"" }.joined(separator: ", ")
        let yaml = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "endpoint: \"tcp://127.0.0.1:\(lab.zmqPort)\"", with: "endpoints: [\(endpoints)]")
        try #require(yaml.contains("endpoints: ["))
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func start(_ i: Int) throws {
        processes[i] = try lab.h.start(lab.enter[0], Array(lab.enter.dropFirst()) + [CLI.binary("regwatch-aggregator"), "serve", "--config", config(i)],
                                       stderrPath: log(i))
        #expect(lab.eventually(20) { (try? self.get(i, "/healthz")) == "ok\n" }, "aggregator \(i): HTTP API did not come up")
    }

    func kill9(_ i: Int) {
        guard let p = processes[i] else { return }
        kill(p.processIdentifier, SIGKILL)
        for _ in 0..<100 where !RegistryHarness.hasExited(p) { usleep(20_000) }
        processes[i] = nil
    }

    func get(_ i: Int, _ path: String) throws -> String {
        let (status, out) = try RegistryHarness.spawnAndWait(lab.enter[0], Array(lab.enter.dropFirst()) + ["/usr/bin/curl", "-sf", "-m", "5", "http://127.0.0.1:\(httpPort(i))\(path)"])
        guard status == 0 else { throw HarnessError("aggregator \(i): GET \(path) failed (\(status))") }
        return out
    }

    func json(_ i: Int, _ path: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(get(i, path).utf8)) as? [[String: Any]])
    }

    /// The role and epoch `/metrics` shows (`regwatch_leader`, `regwatch_leader_epoch`): unlike `/healthz`
    /// it answers without the database, so a cut-off aggregator's role is seen as soon as it changes.
    /// Nil when the aggregator does not answer.
    func role(_ i: Int) -> (role: String, epoch: Int)? {
        guard processes[i] != nil, let text = try? get(i, "/metrics"),
              let leading = metricValue(in: text, "regwatch_leader"), let epoch = metricValue(in: text, "regwatch_leader_epoch") else { return nil }
        return (leading == 1 ? "leader" : "follower", Int(epoch))
    }

    /// The running aggregators that say they lead, with their epochs.
    func leaders() -> [(index: Int, epoch: Int)] {
        processes.keys.sorted().compactMap { i in role(i).flatMap { $0.role == "leader" ? (i, $0.epoch) : nil } }
    }

    /// `GET /api/v1/failovers` of aggregator `i`, as the lab reads it.
    func failovers(_ i: Int) throws -> [FailoverLab.Plan] {
        try json(i, "/api/v1/failovers").map(FailoverLab.Plan.init(json:))
    }

    /// Hosts whose last report (per aggregator `i`'s API) was received after `t`.
    func reportedSince(_ i: Int, _ t: Date) throws -> Set<String> {
        Set(try json(i, "/api/v1/hosts").filter { h in ((h["lastSeen"] as? String).flatMap(RFC3339.parse) ?? .distantPast) > t }.compactMap { $0["id"] as? String })
    }

    /// Every stored pull event's image, per host, read straight from PostgreSQL, with how often each is there.
    func storedImages() throws -> [String: [String: Int]] {
        var out: [String: [String: Int]] = [:]
        for line in try pg.psql("SELECT hostid || ' ' || image FROM pull_event", database: "regwatch").split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { throw HarnessError("unexpected psql line: \(line)") }
            out[String(parts[0]), default: [:]][String(parts[1]), default: 0] += 1
        }
        return out
    }

    /// What an agent's log says it applied, in order: (epoch, generation, mirrors) of each
    /// "applying failover generation" line followed by its "failover generation applied".
    struct Apply: Equatable {
        var epoch: Int
        var generation: Int
        var mirrors: String
        /// The log line's timestamp (whole seconds, as the log prints it).
        var at: Date
    }

    func applies(_ id: String) throws -> [Apply] {
        var out: [Apply] = []
        var pendingMirrors: [Int: String] = [:]
        for line in try String(contentsOfFile: "\(dir)/\(id)/agent.log", encoding: .utf8).split(separator: "\n") {
            guard let g = Self.field("generation", line).flatMap(Int.init) else { continue }
            if line.contains("applying failover generation") {
                pendingMirrors[g] = Self.field("mirrors", line) ?? ""
            } else if line.contains("failover generation applied") {
                let epoch = try #require(Self.field("epoch", line).flatMap(Int.init), "no epoch in: \(line)")
                let at = try #require(Self.timestamp(line), "no timestamp in: \(line)")
                out.append(Apply(epoch: epoch, generation: g, mirrors: pendingMirrors[g] ?? "?", at: at))
            }
        }
        return out
    }

    /// `key=value` from a swift-log line (values end at a space, or at the end of the metadata).
    static func field(_ key: String, _ line: Substring) -> String? {
        guard let r = line.range(of: " \(key)=") else { return nil }
        return String(line[r.upperBound...].prefix { $0 != " " && $0 != "]" })
    }

    /// swift-log's `2026-12-04T22:12:06+0000` at the start of a line.
    static func timestamp(_ line: Substring) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ssZ"
        return line.split(separator: " ").first.flatMap { f.date(from: String($0)) }
    }

    func tearDown() {
        for p in processes.values { kill(p.processIdentifier, SIGKILL) }
        processes = [:]
        pg.stop()
        lab.tearDown()
    }
}
