import Foundation
import RegwatchTestSupport
import Testing

/// The OCI images `make image` writes, run the way a cluster runs them, by a real containerd (`ctr run`)
/// with host directories mounted as the DaemonSet mounts them: the aggregator serves `/healthz`; the
/// agent joins it with a bootstrap token, reports, and applies a failover to the mounted `certs.d`.
@Suite("OCI images in containerd", .serialized, .ownThread, .tags(.root))
struct ImageTests {
    /// A private containerd (its own root, state and socket), stopped and unmounted at the end.
    final class Containerd: @unchecked Sendable {
        let h: RegistryHarness
        var dir: String { h.dir }
        var socket: String { "\(dir)/containerd.sock" }
        private var daemon: Process?
        private var containers: [String] = []

        init(_ h: RegistryHarness) throws {
            self.h = h
            try """
            version = 2
            root = "\(dir)/ctrd-root"
            state = "\(dir)/ctrd-state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            """.write(toFile: "\(dir)/containerd.toml", atomically: true, encoding: .utf8)
            daemon = try h.start("/usr/bin/containerd", ["--config", "\(dir)/containerd.toml"], stderrPath: "\(dir)/containerd.log")
            var up = false
            for _ in 0..<100 where !up {
                up = (try? ctr(["version"])) != nil
                if !up { usleep(100_000) }
            }
            try #require(up, "containerd did not start: \((try? String(contentsOfFile: "\(dir)/containerd.log", encoding: .utf8)) ?? "")")
        }

        @discardableResult
        func ctr(_ args: [String]) throws -> String { try h.run("/usr/bin/ctr", ["--address", socket] + args) }

        /// Imports an OCI archive; returns the image name it carries.
        func importImage(_ archive: String, name: String) throws {
            try ctr(["images", "import", "--snapshotter", "native", "--index-name", name, archive])
        }

        /// Starts a container in the host's network (as `hostNetwork: true`) with a read-only root filesystem,
        /// detached, its output in `DIR/ID.log`. `args` is the whole command line (`ctr run` replaces the
        /// image's entrypoint, Kubernetes' `args` would not).
        func run(_ image: String, id: String, mounts: [(String, String, Bool)], env: [String] = [], args: [String]) throws {
            var a = ["run", "--detach", "--log-uri", "file://\(dir)/\(id).log", "--snapshotter", "native", "--net-host", "--read-only"]
            for (src, dst, rw) in mounts { a += ["--mount", "type=bind,src=\(src),dst=\(dst),options=rbind:\(rw ? "rw" : "ro")"] }
            for e in env { a += ["--env", e] }
            a += [image, id] + args
            containers.append(id)
            try ctr(a)
        }

        func log(_ id: String) -> String { (try? String(contentsOfFile: "\(dir)/\(id).log", encoding: .utf8)) ?? "" }

        deinit {
            for id in containers {
                _ = try? ctr(["tasks", "kill", "-s", "SIGKILL", id])
                usleep(300_000)
                _ = try? ctr(["tasks", "delete", "--force", id])
                _ = try? ctr(["containers", "rm", id])
            }
            h.stopAll()
            if let daemon { RegistryHarness.stop(daemon) }
            _ = try? h.run("/bin/sh", ["-c", "grep -o ' \(dir)[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"])
        }
    }

    static let dist = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("dist").path

    func archive(_ name: String) throws -> String {
        let path = "\(Self.dist)/\(name).oci.tar"
        try #require(FileManager.default.fileExists(atPath: path), "\(path) is missing: `make image` writes it (make test does)")
        return path
    }

    func eventually(_ seconds: Double, _ what: String, _ check: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? check()) == true { return }
            usleep(250_000)
        }
        Issue.record("not within \(seconds) s: \(what)")
        throw HarnessError("timed out: \(what)")
    }

    @Test("the aggregator image serves /healthz; the agent image joins with a token, reports, and applies a failover to the mounted certs.d")
    func imagesRunInContainerd() throws {
        let h = RegistryHarness("images")
        let d = h.dir
        let agentImage = try archive("regwatch-agent"), aggregatorImage = try archive("regwatch-aggregator")
        let ctrd = try Containerd(h)
        try ctrd.importImage(agentImage, name: "regwatch/agent:test")
        try ctrd.importImage(aggregatorImage, name: "regwatch/aggregator:test")

        // Registries on loopback: an upstream with the image and two pull-through mirrors.
        let up = try h.startRegistry(name: "up")
        try h.pushImage(port: up, repository: "test/app", tag: "1")
        let m1 = try h.startRegistry(name: "m1", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(up)\"}")
        let m2 = try h.startRegistry(name: "m2", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(up)\"}")

        // The aggregator's files, owned by its uid (65532) as a volume would be.
        let zmq = RegistryHarness.freePort(), http = RegistryHarness.freePort()
        let agg = "\(d)/aggregator"
        try FileManager.default.createDirectory(atPath: "\(agg)/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(agg)/data/keys", withIntermediateDirectories: true)
        try """
        listen: {zmq: "tcp://127.0.0.1:\(zmq)", http: "127.0.0.1:\(http)"}
        database: /var/lib/regwatch/regwatch.db
        keys: {dir: /var/lib/regwatch/keys}
        enrollment: {mode: token}
        correlation: {window: 2s, openAfter: 2, recoveryHold: 8s, minHosts: 1, minZones: 1, staleAfter: 30}
        failover: {mode: auto, canaryShare: 0.1, maxChangesPerHostPerHour: 20, resendInterval: 5s, canaryTimeout: 90s}
        """.write(toFile: "\(agg)/etc/aggregator.yaml", atomically: true, encoding: .utf8)
        // Keys and a token made with the host's binary against the same files, as an operator would.
        try "keys: {dir: \(agg)/data/keys}\n".write(toFile: "\(d)/ops.yaml", atomically: true, encoding: .utf8)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", "\(d)/ops.yaml"]).status == 0)
        let token = try CLI.run("regwatch-aggregator", ["tokens", "create", "--config", "\(d)/ops.yaml", "--name", "fleet"])
        try #require(token.status == 0, "\(token.stderr)")
        try h.run("/bin/chown", ["-R", "65532:65532", "\(agg)/data"])
        try ctrd.run("regwatch/aggregator:test", id: "rw-aggregator", mounts: [("\(agg)/etc", "/etc/regwatch", false), ("\(agg)/data", "/var/lib/regwatch", true)],
                     args: ["/usr/bin/regwatch-aggregator", "serve", "--config", "/etc/regwatch/aggregator.yaml"])
        try eventually(30, "the aggregator container answers /healthz: \(ctrd.log("rw-aggregator"))") {
            try h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http)/healthz"]).contains("ok")
        }

        // The node: its containerd certs.d and the agent's state dir, mounted under /host as in the DaemonSet.
        let node = "\(d)/node"
        for sub in ["etc/containerd/certs.d/docker.io", "var/lib/regwatch", "etc/regwatch/secrets"] {
            try FileManager.default.createDirectory(atPath: "\(node)/\(sub)", withIntermediateDirectories: true)
        }
        let hosts = "server = \"http://127.0.0.1:\(up)\"\n\n[host.\"http://127.0.0.1:\(m1)\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://127.0.0.1:\(m2)\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        try hosts.write(toFile: "\(node)/etc/containerd/certs.d/docker.io/hosts.toml", atomically: true, encoding: .utf8)
        try token.stdout.write(toFile: "\(node)/etc/regwatch/secrets/token", atomically: true, encoding: .utf8)
        for k in ["server.pub", "signing.pub"] { try h.run("/bin/cp", ["\(agg)/data/keys/\(k)", "\(node)/etc/regwatch/secrets/\(k)"]) }
        try """
        host: {id: "${NODE_NAME}", root: /host, labels: {zone: z1}}
        aggregator: {endpoint: "tcp://127.0.0.1:\(zmq)", serverKey: /etc/regwatch/secrets/server.pub, signingKey: /etc/regwatch/secrets/signing.pub, bootstrapToken: /etc/regwatch/secrets/token}
        interval: 1s
        registries:
          - name: docker.io
            upstream: http://127.0.0.1:\(up)
            rateLimit: false
            probeImage: test/app:1
            mirrors: [{url: "http://127.0.0.1:\(m1)", insecure: true, trusted: true}, {url: "http://127.0.0.1:\(m2)", insecure: true, trusted: true}]
        runtime:
          containerd: {}
        events: {journalUnits: []}
        """.write(toFile: "\(node)/etc/regwatch/agent.yaml", atomically: true, encoding: .utf8)
        try ctrd.run("regwatch/agent:test", id: "rw-agent", mounts: [
            ("\(node)/etc/regwatch/agent.yaml", "/etc/regwatch/agent.yaml", false),
            ("\(node)/etc/regwatch/secrets", "/etc/regwatch/secrets", false),
            ("\(node)/etc/containerd/certs.d", "/host/etc/containerd/certs.d", true),
            ("\(node)/var/lib/regwatch", "/host/var/lib/regwatch", true),
        ], env: ["NODE_NAME=node-img-1"], args: ["/usr/bin/regwatch-agent", "run", "--config", "/etc/regwatch/agent.yaml"])

        // Joined with the token, reporting: the aggregator lists the host.
        try eventually(40, "node-img-1 reports: \(ctrd.log("rw-agent").suffix(1500))") {
            try h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(http)/api/v1/hosts"]).contains("\"node-img-1\"")
        }
        #expect(FileManager.default.fileExists(atPath: "\(node)/var/lib/regwatch/agent.key"), "the agent made its key in the host's state dir")

        // The first mirror dies: the aggregator fails the node over to the second; the mounted hosts.toml changes.
        h.stop(name: "m1")
        func state() -> String {
            ["outages", "failovers", "hosts"].map { (try? h.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(http)/api/v1/\($0)"])) ?? "" }.joined(separator: "\n")
                + ctrd.log("rw-aggregator").suffix(1500) + "\nLAST CYCLE: " + ((try? String(contentsOfFile: "\(node)/var/lib/regwatch/last-cycle", encoding: .utf8)) ?? "none")
                + "\nAGENT:\n" + ctrd.log("rw-agent").suffix(1500)
        }
        try eventually(90, "hosts.toml puts m2 first: \(ctrd.log("rw-agent").suffix(1500))\n\(state())") {
            let text = try String(contentsOfFile: "\(node)/etc/containerd/certs.d/docker.io/hosts.toml", encoding: .utf8)
            guard let a = text.range(of: ":\(m2)\"") else { return false }
            // The dead mirror goes after the live one, or out of the list.
            return text.range(of: ":\(m1)\"").map { a.lowerBound < $0.lowerBound } ?? true
        }
        #expect(try String(contentsOfFile: "\(node)/var/lib/regwatch/applied-generation", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        #expect(FileManager.default.fileExists(atPath: "\(node)/var/lib/regwatch/originals"), "the original hosts.toml is kept for uninstall")
        // The liveness probe, run inside the container as the kubelet would.
        let health = try ctrd.ctr(["tasks", "exec", "--exec-id", "probe", "rw-agent", "/usr/bin/regwatch-agent", "health", "--config", "/etc/regwatch/agent.yaml"])
        #expect(health.hasPrefix("healthy: "), "\(health)")
    }
}
