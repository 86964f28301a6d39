import Foundation
import RegwatchTestSupport
import Testing

/// Faults a host really meets, made in a network namespace that has only `lo`, with its own resolver
/// (dnsmasq) and firewall (nftables). The agent runs inside it with a bind-mounted `resolv.conf`, so no
/// lookup can reach the machine's resolver.
@Suite("Network faults in a namespace", .serialized, .ownThread, .tags(.root))
struct NetworkFaultTests {
    final class Namespace: @unchecked Sendable {
        let name = "rw-t\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
        let harness = RegistryHarness("netns")
        var enter: [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(name)"] }

        init() throws {
            try harness.run("/usr/sbin/ip", ["netns", "add", name])
            try harness.run("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
        }

        deinit {
            harness.stopAll()
            _ = try? harness.run("/usr/sbin/ip", ["netns", "del", name])
        }

        func run(_ args: [String]) throws -> String { try harness.run(enter[0], Array(enter.dropFirst()) + args) }

        func start(_ args: [String]) throws { try harness.start(enter[0], Array(enter.dropFirst()) + args) }

        /// Waits until something inside the namespace listens on the TCP port.
        func waitForPort(_ port: Int) -> Bool {
            for _ in 0..<100 {
                if (try? run(["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"])) != nil { return true }
                usleep(100_000)
            }
            return false
        }

        /// Runs `regwatch-agent ARGS` inside the namespace with `resolv` as its `/etc/resolv.conf`.
        func agent(_ args: [String], resolv: String) throws -> CLI.Result {
            let inner = "mount --bind \(resolv) /etc/resolv.conf && exec " + (enter + [CLI.binary("regwatch-agent")] + args).map { "'\($0)'" }.joined(separator: " ")
            return try CLI.runRaw("/usr/bin/unshare", ["-m", "/bin/sh", "-c", inner])
        }
    }

    @Test("firewall DROP is tcp_timeout, no route is network_unreachable, a name dnsmasq does not know is dns_nxdomain, a dead resolver is dns_failure")
    func faults() throws {
        let ns = try Namespace()
        let h = ns.harness
        // A registry inside the namespace, reachable by name through the namespace's own dnsmasq.
        let port = Int.random(in: 20_000...29_999), dropped = port + 1
        let config = "\(h.dir)/registry.yml"
        try """
        version: 0.1
        log: {level: error}
        storage: {filesystem: {rootdirectory: "\(h.dir)/data"}}
        http: {addr: "127.0.0.1:\(port)"}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        try ns.start(["/usr/bin/docker-registry", "serve", config])
        try ns.start(["/usr/sbin/dnsmasq", "--keep-in-foreground", "--port=53", "--listen-address=127.0.0.1", "--bind-interfaces",
                      "--no-resolv", "--no-hosts", "--no-poll", "--address=/registry.test/127.0.0.1", "--local=/test/", "--user=root"])
        #expect(ns.waitForPort(port))
        _ = try ns.run(["/usr/sbin/nft", "add table inet rw; add chain inet rw input { type filter hook input priority 0; }; add rule inet rw input tcp dport \(dropped) drop"])
        try "nameserver 127.0.0.1\n".write(toFile: "\(h.dir)/resolv.conf", atomically: true, encoding: .utf8)
        try "nameserver 127.0.0.2\noptions timeout:1 attempts:1\n".write(toFile: "\(h.dir)/resolv-dead.conf", atomically: true, encoding: .utf8)
        let agentConfig = "\(h.dir)/agent.yaml"
        try """
        host: {id: node-ns}
        aggregator: {insecure: true}
        registries:
          - name: docker.io
            upstream: http://registry.test:\(port)
            rateLimit: false
            mirrors:
              - {url: "http://missing.test:\(port)", insecure: true}
              - {url: "http://127.0.0.1:\(dropped)", insecure: true}
              # TEST-NET-1 (RFC 5737): the namespace has only lo, so there is no route and nothing is sent.
              - {url: "http://192.0.2.1:5000", insecure: true}
        """.write(toFile: agentConfig, atomically: true, encoding: .utf8)

        let r = try ns.agent(["check", "--config", agentConfig, "--json"], resolv: "\(h.dir)/resolv.conf")
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let classes = (doc["endpoints"] as? [[String: Any]] ?? []).map { ($0["endpoint"] as? String ?? "", $0["class"] as? String ?? "") }
        #expect(classes.first { $0.0.contains("registry.test") }?.1 == "ok")
        #expect(classes.first { $0.0.contains("missing.test") }?.1 == "dns_nxdomain")
        #expect(classes.first { $0.0.contains(":\(dropped)") }?.1 == "tcp_timeout")
        #expect(classes.first { $0.0.contains("192.0.2.1") }?.1 == "network_unreachable")

        let dead = try ns.agent(["check", "--config", agentConfig, "--json"], resolv: "\(h.dir)/resolv-dead.conf")
        let deadDoc = try #require(try JSONSerialization.jsonObject(with: Data(dead.stdout.utf8)) as? [String: Any], "\(dead.stderr)")
        let deadClasses = (deadDoc["endpoints"] as? [[String: Any]] ?? []).map { ($0["endpoint"] as? String ?? "", $0["class"] as? String ?? "") }
        #expect(deadClasses.first { $0.0.contains("registry.test") }?.1 == "dns_failure")
        #expect(deadClasses.first { $0.0.contains("missing.test") }?.1 == "dns_failure")

        let diagnose = try ns.agent(["diagnose", "test/app:1", "--config", agentConfig, "--json"], resolv: "\(h.dir)/resolv.conf")
        let verdict = (try JSONSerialization.jsonObject(with: Data(diagnose.stdout.utf8)) as? [String: Any])?["verdict"] as? [String: Any]
        #expect(verdict?["class"] as? String == "dns_nxdomain", "\(diagnose.stdout)")
    }
}
