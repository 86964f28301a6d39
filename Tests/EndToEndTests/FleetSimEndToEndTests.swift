import Foundation
import GRDB
import RegwatchTestSupport
import Testing

/// `regwatch-fleetsim` against a real `regwatch-aggregator serve`: emulated agents enroll with a bootstrap
/// token, take a failover rollout through the agent's own command checks, and send pull events through a
/// series of kill -9 restarts of the aggregator (the short crash series; `make bench-fleet` runs 200 kills).
@Suite(.serialized) struct FleetSimEndToEndTests {
    /// An aggregator in token enrollment mode, started and restarted by a script the simulator can run too.
    final class Lab: @unchecked Sendable {
        let h = RegistryHarness("fleetsim")
        let zmqPort = RegistryHarness.freePort()
        let httpPort = RegistryHarness.freePort()
        var dir: String { h.dir }
        var script: String { "\(dir)/restart.sh" }

        init() throws {
            try """
            listen: {zmq: "tcp://127.0.0.1:\(zmqPort)", http: "127.0.0.1:\(httpPort)"}
            database: \(dir)/regwatch.db
            keys: {dir: \(dir)/keys}
            enrollment: {mode: token, joinsPerSecond: 1000}
            correlation: {window: 1s, openAfter: 2, minHosts: 3, minZones: 2}
            """.write(toFile: "\(dir)/aggregator.yaml", atomically: true, encoding: .utf8)
            #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", "\(dir)/aggregator.yaml"]).status == 0)
            let token = try CLI.run("regwatch-aggregator", ["tokens", "create", "--name", "sim", "--ttl", "0", "--config", "\(dir)/aggregator.yaml"])
            #expect(token.status == 0)
            try token.stdout.write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
            // `restart.sh start` starts the aggregator; `restart.sh` kills it with SIGKILL, checks the
            // database's integrity (appended to integrity.log) and starts it again. Both return once it serves.
            try RegistryHarness.writeExecutable("""
            #!/bin/bash
            set -u
            D=\(dir)
            if [ "${1:-}" != start ]; then
              pid=$(cat "$D/aggregator.pid")
              kill -9 "$pid"
              for i in $(seq 500); do
                s=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null || echo gone)
                { [ "$s" = gone ] || [ "$s" = Z ]; } && break
                sleep 0.01
              done
              sqlite3 "$D/regwatch.db" 'PRAGMA integrity_check' >> "$D/integrity.log" 2>&1
            fi
            \(CLI.binary("regwatch-aggregator")) serve --config "$D/aggregator.yaml" >> "$D/aggregator.log" 2>&1 < /dev/null &
            echo $! > "$D/aggregator.pid"
            for i in $(seq 300); do curl -sf http://127.0.0.1:\(httpPort)/healthz > /dev/null && exit 0; sleep 0.05; done
            echo "the aggregator did not serve within 15 s" >&2
            exit 1
            """, to: script)
            _ = try h.run("/bin/bash", [script, "start"])
        }

        func fleetsim(_ args: [String]) throws -> (status: Int32, summary: [String: Any]?, stderr: String) {
            let base = [
                "--endpoint", "tcp://127.0.0.1:\(zmqPort)", "--server-key", "\(dir)/keys/server.pub", "--signing-key", "\(dir)/keys/signing.pub",
                "--token-file", "\(dir)/token", "--state-dir", "\(dir)/sim", "--aggregator-pidfile", "\(dir)/aggregator.pid",
            ]
            let r = try CLI.run("regwatch-fleetsim", base + args)
            let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
            return (r.status, try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], r.stderr)
        }

        deinit {
            if let text = try? String(contentsOfFile: "\(dir)/aggregator.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)
            }
            h.stopAll()
        }
    }

    @Test func aFailoverRolloutReachesEveryEmulatedAgent() throws {
        let lab = try Lab()
        let r = try lab.fleetsim([
            "--agents", "24", "--scenario", "failover", "--interval", "2s", "--fault-after", "5s", "--duration", "90s",
            "--api", "http://127.0.0.1:\(lab.httpPort)",
            // Three processes, as a fleet larger than one process's open-files limit runs: the fault and the
            // figures cross to the workers and back.
            "--agents-per-process", "10",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("24 agents over 3 processes"), "\(r.stderr)")
        let s = try #require(r.summary, "no JSON summary: \(r.stderr)")
        #expect(s["enrolledThisRun"] as? Int == 24, "every agent joined with the bootstrap token")
        #expect((s["acks"] as? [String: Int])?["applied"] == 24, "\(s)")
        #expect((s["rejectReasons"] as? [String: Int])?.isEmpty == true, "\(s)")
        let detect = try #require(s["detectSeconds"] as? Double)
        #expect(detect > 0 && detect < 30)
        let canaries = try #require(s["canaries"] as? Int)
        #expect(canaries >= 4 && canaries < 24, "at least one canary per zone, fewer than the fleet")
        #expect(s["fullStageAckedWithin10s"] as? Double == 1)
        #expect(s["allAckedSeconds"] is Double)
        #expect(s["peakRSSBytes"] as? Int ?? 0 > 0)

        // The aggregator saw the same: every host acked the generation, and it completes.
        var last = ""
        let complete = pollUntil(30) {
            last = (try? lab.h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(lab.httpPort)/api/v1/failovers"])) ?? ""
            return last.contains("\"acked\":24") && last.contains("\"state\":\"complete\"")
        }
        #expect(complete, "\(last)")
    }

    @Test func everyAcknowledgedEventSurvivesKill9Restarts() throws {
        let lab = try Lab()
        let kills = 5
        let r = try lab.fleetsim([
            "--agents", "20", "--scenario", "crash", "--interval", "1s", "--events", "5", "--kills", "\(kills)", "--kill-every", "0.5-1.5",
            "--restart-command", lab.script, "--acked-events", "\(lab.dir)/acked.txt",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let s = try #require(r.summary, "no JSON summary: \(r.stderr)")
        #expect(s["kills"] as? Int == kills)
        let sent = try #require(s["eventsSent"] as? Int)
        #expect(sent > 100)
        #expect(s["eventsAcked"] as? Int == sent, "\(s)")
        #expect(s["eventsUnacked"] as? Int == 0)

        let integrity = try String(contentsOfFile: "\(lab.dir)/integrity.log", encoding: .utf8).split(separator: "\n")
        #expect(integrity == Array(repeating: "ok", count: kills))

        let acked = try String(contentsOfFile: "\(lab.dir)/acked.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(acked.count == sent)
        let db = try DatabaseQueue(path: "\(lab.dir)/regwatch.db")
        let stored = try db.read { try Row.fetchAll($0, sql: "SELECT hostId, seq FROM pull_event") }.map { "\($0["hostId"] as String) \($0["seq"] as Int64)" }
        let storedSet = Set(stored)
        #expect(stored.count == storedSet.count, "a (host, seq) stored twice")
        let missing = acked.filter { !storedSet.contains($0) }
        #expect(missing.isEmpty, "acknowledged but not stored: \(missing.prefix(5))")
        #expect(stored.count == sent, "stored \(stored.count) of \(sent) sent")
    }

    @Test func badArgumentsGetOneLine() throws {
        let lab = try Lab()
        for (args, message) in [
            (["--agents", "2", "--scenario", "storm"], "--scenario: \"storm\" is not one of steady, failover, reconnect, crash"),
            (["--agents", "2", "--scenario", "failover"], "--api: the failover scenario needs"),
            (["--agents", "2", "--scenario", "steady", "--fault", "quota"], "--fault: \"quota\": quota needs egress=NAME"),
            (["--agents", "2", "--scenario", "crash", "--restart-command", "true"], "--kills: the crash scenario needs at least one kill"),
            (["--agents", "2", "--scenario", "steady", "--interval", "soon"], "--interval: \"soon\" is not a duration"),
        ] {
            let r = try lab.fleetsim(args)
            #expect(r.status == 2, "\(args)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(message), "\(args): \(r.stderr)")
        }
    }
}
