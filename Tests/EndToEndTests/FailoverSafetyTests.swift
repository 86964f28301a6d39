import Crypto
import Foundation
import RegwatchAgent
import RegwatchShared
import RegwatchTestSupport
import Testing

/// The failure paths of failover with real processes: a target mirror that answers `/v2/` but serves
/// nothing halts the rollout at the canaries, which are rolled back; an agent killed at every step of an
/// apply leaves runtime files that parse and hold the old or the new order, and a real dockerd that ends
/// up on the new order once the command is applied again.
@Suite("failover safety", .serialized, .ownThread, .tags(.root))
struct FailoverSafetyTests {
    @Test("a bad mirror as the target: canaries apply it, their probes fail, the rollout halts and they roll back; the rest never get it")
    func badMirrorHaltsAtCanaries() throws {
        let lab = try FailoverLab(
            mirrorNames: ["mirrorA", "mirrorC"],
            // Slow to open (4 windows), so the bad mirror's own outage opens only after the canaries tried it.
            correlation: "{window: 2s, openAfter: 4, recoveryHold: 60s, minHosts: 2, minZones: 2, staleAfter: 5}",
            failover: "{mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 5s, canaryTimeout: 90s}")
        defer { lab.tearDown() }
        let a = lab.url("mirrorA"), c = lab.url("mirrorC")
        for (id, zone) in [("z1-a", "z1"), ("z1-b", "z1"), ("z2-a", "z2"), ("z2-b", "z2")] {
            try lab.addHost(id, zone: zone, docker: false)
        }
        // An empty registry (answers /v2/, has no manifests) waits on another port of the namespace.
        let emptyPort = lab.port("mirrorC") + 100
        try lab.h.startRegistry(name: "mirrorCempty", netns: lab.ns, port: emptyPort)
        try lab.startAggregator()
        for host in lab.hosts { try lab.startAgent(host.id) }
        #expect(try lab.eventually(30) { try lab.appliedGenerations().count == 4 }, "not every agent reported")

        lab.h.stop(name: "mirrorA")
        #expect(try lab.eventually(60) { try lab.activeOutages().contains { ($0["endpoint"] as? String) == a } }, "mirror A's outage did not open")
        // C turns into a registry that answers /v2/ but has nothing: the failover target is bad. A NAT
        // redirect switches C's port to the empty registry at once (a restart would leave a gap in which C
        // refuses connections, and a canary probing then would fail for that instead).
        try lab.inside(["/usr/sbin/nft", "add table ip rwswap"])
        try lab.inside(["/usr/sbin/nft", "add chain ip rwswap out { type nat hook output priority -100 ; }"])
        let redirect = try lab.inside(["/usr/sbin/nft", "add rule ip rwswap out tcp dport \(lab.port("mirrorC")) redirect to :\(emptyPort)"])
        try #require(redirect.status == 0, "nft redirect: \(redirect.output)")

        var bad: FailoverLab.Plan?
        let halted = try lab.eventually(90) {
            bad = try lab.failovers().first { $0.mirrors == [c] && ($0.state == "rolled_back" || $0.state == "halted") }
            return bad != nil
        }
        try #require(halted, "no halted rollout to [C]: \(lab.summary)\n\((try? lab.lines("\(lab.dir)/aggregator.log", containing: "failover"))?.suffix(30).joined(separator: "\n") ?? "(no aggregator log)")")
        let g = bad!.generation
        #expect(bad!.state == "rolled_back", "\(bad!)")
        #expect(bad!.reason.contains("probe of \(c)") && bad!.reason.contains("not_found"), "\(bad!.reason)")

        // Only the canaries (one per zone) were sent it or applied it.
        let sentTo = Set(try lab.lines("\(lab.dir)/aggregator.log", containing: "failover directive sent")
            .filter { $0.contains("generation=\(g) ") }.compactMap { FailoverEndToEndTests.host(in: $0) })
        #expect(sentTo.count == 2 && Set(sentTo.map { $0.prefix(2) }) == ["z1", "z2"], "sent to \(sentTo)")
        let applied = try lab.appliedGenerations()
        for host in lab.hosts where !sentTo.contains(host.id) {
            // State first: a host that never applied it is below it (the rollback went to the canaries only).
            #expect((applied[host.id] ?? Int.max) < g, "\(host.id) is at generation \(applied[host.id] ?? -1)")
            #expect(try lab.lines("\(host.dir)/agent.log", containing: "applying failover generation").allSatisfy { !$0.contains("generation=\(g) ") },
                    "\(host.id) applied the bad generation")
        }
        // The canaries got their previous order back with a rollback generation.
        let rolledBack = try lab.eventually(60) {
            try lab.hosts.filter { sentTo.contains($0.id) }.allSatisfy { host in
                try lab.lines("\(host.dir)/agent.log", containing: "failover generation applied").contains { line in
                    Int(line.split(separator: " ").first { $0.hasPrefix("generation=") }?.dropFirst(11) ?? "") ?? 0 > g
                }
            }
        }
        #expect(rolledBack, "the canaries did not apply a rollback generation")
        let cli = try CLI.run("regwatch-aggregator", ["failovers", "--config", "\(lab.dir)/aggregator.yaml"])
        #expect(cli.stdout.contains("rollback") && cli.stdout.contains("rolled_back"), "\(cli.stdout)")
        // What RegwatchFailoverHalted and RegwatchFailoverRolledBack alert on.
        let metrics = try lab.get("/metrics")
        for series in ["regwatch_failover_blocked", "regwatch_failover_rollbacks_total", "regwatch_failover_plans{state=\"rolled_back\"}"] {
            #expect(metricValue(in: metrics, series) == 1, "\(series): \(metrics.split(separator: "\n").filter { $0.contains("failover") })")
        }
        // The preview names the block; a thaw (nothing was frozen) lifts it.
        let preview = try CLI.run("regwatch-aggregator", ["failover", "plan", "--config", "\(lab.dir)/aggregator.yaml"])
        #expect(preview.stdout.contains("blocked: docker.io=[\(c)] after generation \(g) halted"), "\(preview.stdout)")
        // (The CLI reaches the running aggregator's API, which listens inside the lab's namespace.)
        let thaw = try lab.inside([CLI.binary("regwatch-aggregator"), "failover", "thaw", "--config", "\(lab.dir)/aggregator.yaml"])
        #expect(thaw.status == 0, "\(thaw.output)")
        #expect(try lab.eventually(20) { try lab.failovers().contains { $0.mirrors == [c] && $0.generation > g } },
                "the map was not tried again after the thaw: \(lab.summary)")
        _ = a
    }

    @Test("kill -9 at every step of an apply (temp write, fsync, rename, dir fsync, reload, persist): files parse and hold the old or the new order")
    func crashAtEveryStep() throws {
        let lab = try FailoverLab(mirrorNames: ["mirrorA", "mirrorB"], correlation: "{window: 2s}", failover: "{mode: auto}")
        defer { lab.tearDown() }
        let a = lab.url("mirrorA"), b = lab.url("mirrorB")
        try lab.addHost("crash", zone: "z1", docker: true, daemonExtra: FailoverEndToEndTests.manyKeys)
        let host = lab.hosts[0]
        try lab.startDockerd(host)
        let signer = CommandSigner(key: try KeyFiles.readSigningKey("\(lab.dir)/keys/signing.key"))
        let agent = CLI.binary("regwatch-agent")
        var env = ProcessInfo.processInfo.environment
        env["REGWATCH_LOG_LEVEL"] = "error"

        var points = ["apply.before-reload", "apply.after-verify", "apply.before-persist"]
        for step in ["atomic.before-temp", "atomic.after-temp-write", "atomic.after-fsync", "atomic.after-rename", "atomic.after-dir-fsync"] {
            // Eight atomic writes per apply: three files and their backups, the generation, the change log.
            for n in 1...8 { points.append("\(step)@\(n)") }
        }
        var generation: UInt64 = 0
        var order = [a, b]
        var kills = 0
        for round in 0..<2 {
            for point in points {
                generation += 1
                let old = order
                order = order == [a, b] ? [b, a] : [a, b]
                let now = Date()
                let command = try signer.sign(FailoverDirective(
                    generation: generation, issuedAt: now, expiresAt: now.addingTimeInterval(600), target: "crash",
                    mirrors: ["docker.io": order], reason: "crash test \(round) \(point)"))
                let file = "\(lab.dir)/command.json"
                try JSONCoding.encoder().encode(command).write(to: URL(fileURLWithPath: file))
                let args = ["failover", "apply", "--config", "\(host.dir)/agent.yaml", "--command", file]
                var crashEnv = env
                crashEnv["REGWATCH_FAILPOINT"] = point
                let (status, _) = try RegistryHarness.spawnAndWait(agent, args, environment: crashEnv)
                if status != 0 && status != 1 { kills += 1 }
                try Self.expectParsesAsOldOrNew(host, old: old, new: order, at: point)
                // The command comes again (the aggregator re-sends): it completes.
                let (again, out) = try RegistryHarness.spawnAndWait(agent, args, environment: env)
                #expect(again == 0, "re-apply after a kill at \(point): \(out)")
                let files = try lab.fileMirrors(host)
                #expect(files.docker == order && files.containerd == order && files.crio == order, "after \(point): \(files)")
                #expect(try lab.dockerMirrors(host) == order, "dockerd after \(point)")
            }
        }
        #expect(kills >= points.count * 2 - 2, "only \(kills) of \(points.count * 2) failpoints killed the agent")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: host.dir).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "temp files left: \(leftovers)")
        try FailoverEndToEndTests.expectSameExceptMirrors(lab, "crash")
        #expect(try AppliedGenerationFile(stateDir: "\(host.dir)/state").read() == generation)
    }

    /// Every runtime file parses with the agent's strict readers and holds `old` or `new`.
    static func expectParsesAsOldOrNew(_ host: FailoverLab.Host, old: [String], new: [String], at point: String) throws {
        let daemon = try DockerDaemonConfig.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: "\(host.dir)/daemon.json"))), path: "daemon.json")
        #expect(daemon.mirrors == old || daemon.mirrors == new, "daemon.json after a kill at \(point): \(daemon.mirrors)")
        let hostsPath = "\(host.dir)/certs.d/docker.io/hosts.toml"
        let hosts = try ContainerdHosts.parse(String(contentsOfFile: hostsPath, encoding: .utf8), registry: "docker.io", path: hostsPath)
        #expect(hosts.hosts.map(\.url) == old || hosts.hosts.map(\.url) == new, "hosts.toml after a kill at \(point)")
        let confPath = "\(host.dir)/registries.conf"
        let conf = try CRIORegistries.parse(String(contentsOfFile: confPath, encoding: .utf8), path: confPath)
        let mirrors = conf.registries.first { $0.prefix == "docker.io" }?.mirrors.map { "http://" + $0.location } ?? []
        #expect(mirrors == old || mirrors == new, "registries.conf after a kill at \(point): \(mirrors)")
    }
}

/// Lost messages and restarts heal by themselves: an agent frozen through the rollout and an aggregator
/// killed with -9 in the middle of it, and still every host converges on the failover, with the
/// generation counter continuing where it was.
@Suite("failover convergence", .serialized, .ownThread, .tags(.root))
struct FailoverConvergenceTests {
    @Test("aggregator kill -9 mid-rollout and an agent frozen through it: every host converges, generations never reused")
    func healsAfterRestarts() throws {
        let lab = try FailoverLab(
            mirrorNames: ["mirrorA", "mirrorB"],
            correlation: "{window: 2s, openAfter: 2, recoveryHold: 60s, minHosts: 2, minZones: 2, staleAfter: 4}",
            failover: "{mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 3s, canaryTimeout: 90s}")
        defer { lab.tearDown() }
        let b = lab.url("mirrorB")
        for (id, zone) in [("z1-a", "z1"), ("z1-b", "z1"), ("z1-c", "z1"), ("z2-a", "z2"), ("z2-b", "z2"), ("z2-c", "z2")] {
            try lab.addHost(id, zone: zone, docker: false)
        }
        try lab.startAggregator()
        for host in lab.hosts { try lab.startAgent(host.id) }
        #expect(try lab.eventually(30) { try lab.appliedGenerations().count == 6 }, "not every agent reported")

        // z2-c freezes (its messages are lost while it is stopped), then mirror A dies.
        let frozen = try #require(lab.agents["z2-c"])
        kill(frozen.processIdentifier, SIGSTOP)
        lab.h.stop(name: "mirrorA")
        var first: FailoverLab.Plan?
        #expect(try lab.eventually(60) {
            first = try lab.failovers().first { $0.mirrors == [b] && $0.acked >= 1 }
            return first != nil
        }, "no failover acked by a canary: \(lab.summary)")
        let g = try #require(first).generation

        // The aggregator dies mid-rollout and comes back with its state from SQLite.
        let aggregator = try #require(lab.aggregator)
        kill(aggregator.processIdentifier, SIGKILL)
        for _ in 0..<100 where !RegistryHarness.hasExited(aggregator) { usleep(20_000) }
        try lab.startAggregator()
        kill(frozen.processIdentifier, SIGCONT)

        let converged = try lab.eventually(90) {
            let applied = try lab.appliedGenerations(), plans = try lab.failovers()
            return try lab.hosts.allSatisfy { host in try lab.fileMirrors(host).containerd == [b] }
                && applied.count == lab.hosts.count && applied.values.allSatisfy { $0 >= g }
                && plans.allSatisfy { $0.pending == 0 || !["canary", "rolling"].contains($0.state) }
        }
        #expect(converged, "not converged: \(lab.summary)")
        for host in lab.hosts {
            let files = try lab.fileMirrors(host)
            #expect(files.containerd == [b] && files.crio == [b], "\(host.id): \(files)")
        }
        let generations = try lab.failovers().map(\.generation)
        #expect(Set(generations).count == generations.count, "a generation was issued twice: \(generations)")
        #expect(generations.contains(g))
    }
}
