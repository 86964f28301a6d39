import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The closed loop with real runtimes: agents in two zones each manage a real dockerd, a containerd
/// `certs.d` (used by a real `ctr image pull --hosts-dir`) and a `registries.conf` (used by a real
/// `skopeo copy`). Mirror A dies: the outage opens, the canaries (one per zone) switch, then the rest;
/// pulls go through mirror B without touching A; A comes back and after the recovery hold the
/// preferred order returns everywhere.
@Suite("failover end to end", .serialized, .ownThread, .tags(.root))
struct FailoverEndToEndTests {
    static let manyKeys = """
    ,
      "log-driver": "json-file",
      "log-opts": {"max-size": "10m", "max-file": "3", "labels": "team,app"},
      "labels": ["rack=r7", "role=test"],
      "max-concurrent-downloads": 3,
      "max-download-attempts": 2,
      "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
      "shutdown-timeout": 20,
      "debug": false
    """

    @Test("mirror A down: canaries then the rest switch to B, real pulls use B only; A back: failback to the preferred order")
    func failoverAndFailback() throws {
        let lab = try FailoverLab(
            mirrorNames: ["mirrorA", "mirrorB"],
            // staleAfter is long so the agents can be paused (SIGSTOP) while the runtimes pull.
            correlation: "{window: 2s, openAfter: 2, recoveryHold: 8s, minHosts: 2, minZones: 2, staleAfter: 30}",
            failover: "{mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 5s, canaryTimeout: 90s}")
        defer { lab.tearDown() }
        let a = lab.url("mirrorA"), b = lab.url("mirrorB")
        try lab.addHost("z1-a", zone: "z1", docker: true, daemonExtra: Self.manyKeys)
        try lab.addHost("z1-b", zone: "z1", docker: true)
        try lab.addHost("z2-a", zone: "z2", docker: true)
        try lab.addHost("z2-b", zone: "z2", docker: true)
        for host in lab.hosts { try lab.startDockerd(host) }
        try lab.startContainerd()
        try lab.startAggregator()
        for host in lab.hosts { try lab.startAgent(host.id) }
        for host in lab.hosts { #expect(try lab.dockerMirrors(host) == [a, b]) }
        #expect(try lab.eventually(30) { try lab.appliedGenerations().count == 4 }, "not every agent reported")

        // Count every packet sent to mirror A's port from now on.
        let portA = lab.port("mirrorA")
        try lab.inside(["/usr/sbin/nft", "add table inet rwtest"])
        try lab.inside(["/usr/sbin/nft", "add chain inet rwtest out { type filter hook output priority 0 ; }"])
        try lab.inside(["/usr/sbin/nft", "add rule inet rwtest out tcp dport \(portA) counter"])

        lab.h.stop(name: "mirrorA")
        var plan: FailoverLab.Plan?
        let switched = try lab.eventually(120) {
            plan = try lab.failovers().first { $0.mirrors == [b] && $0.state == "complete" }
            let applied = try lab.appliedGenerations()
            return plan != nil && applied.values.allSatisfy { $0 == plan!.generation }
        }
        try #require(switched, "no complete failover to [B]: \(lab.summary)\n\((try? lab.lines("\(lab.dir)/aggregator.log", containing: "failover"))?.suffix(30).joined(separator: "\n") ?? "(no aggregator log)")")
        let g = plan!.generation
        #expect(plan!.acked == 4 && plan!.pending == 0 && plan!.rejected == 0)
        #expect(try lab.activeOutages().contains { ($0["kind"] as? String) == "endpoint_down" && ($0["endpoint"] as? String) == a })

        // Staged: one canary per zone was sent the generation, verified, and only then the other two.
        let log = "\(lab.dir)/aggregator.log"
        let events = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        let sends = events.enumerated().filter { $0.element.contains("failover directive sent") && $0.element.contains("generation=\(g) ") }
        let verified = try #require(events.firstIndex { $0.contains("failover canaries verified") && $0.contains("generation=\(g) ") }, "no canary verification logged")
        let early = Set(sends.filter { $0.offset < verified }.compactMap { Self.host(in: $0.element) })
        let late = Set(sends.filter { $0.offset > verified }.compactMap { Self.host(in: $0.element) })
        #expect(early.count == 2 && Set(early.map { $0.prefix(2) }) == ["z1", "z2"], "canaries: \(early)")
        #expect(late == Set(lab.hosts.map(\.id)).subtracting(early), "rest: \(late)")

        // Every runtime of every host now uses B only; dockerd says so itself.
        for host in lab.hosts {
            let files = try lab.fileMirrors(host)
            #expect(files.docker == [b] && files.containerd == [b] && files.crio == [b], "\(host.id): \(files)")
            #expect(try lab.dockerMirrors(host) == [b], "\(host.id) dockerd")
        }
        // daemon.json kept every other key and value.
        try Self.expectSameExceptMirrors(lab, "z1-a")

        // Real pulls through B; nothing sent to A. The agents (which keep probing A) are paused meanwhile,
        // so the counter sees only the runtimes.
        for p in lab.agents.values { kill(p.processIdentifier, SIGSTOP) }
        usleep(500_000)
        let packetsBefore = try Self.counter(lab)
        #expect(packetsBefore > 0, "the counter saw none of the agents' probes of A: it would not see a runtime's either")
        let bLogBefore = try lab.lines("\(lab.dir)/mirrorB.access.log", containing: "/v2/test/app/manifests/1").count
        let z1a = lab.hosts[0], z2a = lab.hosts[2], z2b = lab.hosts[3]
        let docker = try lab.inside(["/usr/bin/docker", "-H", "unix://\(z1a.dir)/docker.sock", "pull", "test/app:1"])
        #expect(docker.status == 0, "docker pull: \(docker.output)")
        let ctr = try lab.inside(["/usr/bin/ctr", "--address", "\(lab.dir)/containerd/containerd.sock", "image", "pull", "--snapshotter", "native",
                                  "--hosts-dir", "\(z2a.dir)/certs.d", "docker.io/test/app:1"])
        #expect(ctr.status == 0, "ctr pull: \(ctr.output)")
        let skopeo = try lab.inside(["/usr/bin/skopeo", "--registries-conf", "\(z2b.dir)/registries.conf", "--insecure-policy", "copy",
                                     "docker://docker.io/test/app:1", "dir:\(z2b.dir)/skopeo-copy"])
        #expect(skopeo.status == 0, "skopeo copy: \(skopeo.output)")
        let bLogAfter = try lab.lines("\(lab.dir)/mirrorB.access.log", containing: "/v2/test/app/manifests/1").count
        #expect(bLogAfter >= bLogBefore + 3, "mirror B served \(bLogAfter - bLogBefore) manifest requests for 3 pulls")
        #expect(try Self.counter(lab) == packetsBefore, "packets were sent to mirror A during the pulls")
        for p in lab.agents.values { kill(p.processIdentifier, SIGCONT) }

        // A is back: after the recovery hold the preferred order returns everywhere.
        try lab.h.restartRegistry(name: "mirrorA", netns: lab.ns, port: portA, accessLog: "\(lab.dir)/mirrorA.access.log")
        var back: FailoverLab.Plan?
        let failedBack = try lab.eventually(120) {
            back = try lab.failovers().first { $0.generation > g && $0.mirrors == [a, b] && $0.state == "complete" }
            let applied = try lab.appliedGenerations()
            return back != nil && applied.values.allSatisfy { $0 == back!.generation }
        }
        try #require(failedBack, "no failback: \(lab.summary)")
        #expect(back!.reason.contains("preferred"), "failback reason: \(back!.reason)")
        for host in lab.hosts {
            let files = try lab.fileMirrors(host)
            #expect(files.docker == [a, b] && files.containerd == [a, b] && files.crio == [a, b], "\(host.id): \(files)")
            #expect(try lab.dockerMirrors(host) == [a, b], "\(host.id) dockerd")
        }
        try Self.expectSameExceptMirrors(lab, "z1-a")
        // The timeline is in the database and the CLI shows it.
        let cli = try CLI.run("regwatch-aggregator", ["failovers", "--config", "\(lab.dir)/aggregator.yaml"])
        #expect(cli.status == 0 && cli.stdout.contains("complete") && cli.stdout.contains("failback"), "\(cli.stdout)\(cli.stderr)")
    }

    /// The `host.id=` value of a log line.
    static func host(in line: Substring) -> String? {
        guard let r = line.range(of: "host.id=") else { return nil }
        return String(line[r.upperBound...].prefix { !$0.isWhitespace })
    }

    /// The packet count of the nft counter on mirror A's port.
    static func counter(_ lab: FailoverLab) throws -> Int {
        let out = try lab.inside(["/usr/sbin/nft", "list chain inet rwtest out"]).output
        guard let r = out.range(of: "counter packets ") else { throw HarnessError("no counter in: \(out)") }
        return Int(out[r.upperBound...].prefix { $0.isNumber }) ?? -1
    }

    /// daemon.json equals what was written before the agents started, except `registry-mirrors`.
    static func expectSameExceptMirrors(_ lab: FailoverLab, _ id: String) throws {
        let host = lab.hosts.first { $0.id == id }!
        func canonical(_ data: Data) throws -> String {
            var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            object["registry-mirrors"] = nil
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        let now = try canonical(Data(contentsOf: URL(fileURLWithPath: "\(host.dir)/daemon.json")))
        let before = try canonical(lab.originalDaemonJSON[id]!)
        #expect(now == before, "daemon.json of \(id) lost or changed keys")
        #expect(before.contains("default-ulimits") || id != "z1-a")
    }
}
