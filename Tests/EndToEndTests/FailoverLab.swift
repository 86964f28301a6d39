import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// A fleet for failover tests, all inside one network namespace that has only `lo` (nothing in it can
/// reach or resolve a public name): an upstream registry with `test/app:1`, pull-through mirrors of it,
/// the aggregator, and per host an agent with its own `daemon.json` (optionally with a real dockerd
/// reading it), containerd `certs.d` and `registries.conf`. A shared containerd serves `ctr image pull
/// --hosts-dir` for any host's `certs.d`.
final class FailoverLab: @unchecked Sendable {
    struct Host {
        var id: String
        var zone: String
        var docker: Bool
        var dir: String
    }

    let h = RegistryHarness("fo")
    let ns = "rw-fo\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
    var dir: String { h.dir }
    // Fixed ports: the namespace is this lab's alone, so nothing else can hold them (random ones collided).
    let upstream = 5000
    /// Mirror name -> port, in the hosts' preferred order.
    var mirrors: [(name: String, port: Int)] = []
    let zmqPort = 7450
    let httpPort = 7451
    var hosts: [Host] = []
    var aggregator: Process?
    var agents: [String: Process] = [:]
    var dockerds: [String: Process] = [:]
    /// Every daemon.json as written before the agents started.
    var originalDaemonJSON: [String: Data] = [:]

    func url(_ mirror: String) -> String { "http://127.0.0.1:\(port(mirror))" }
    func port(_ mirror: String) -> Int { mirrors.first { $0.name == mirror }!.port }
    var enter: [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(ns)"] }

    /// - Parameters:
    ///   - mirrorNames: the pull-through mirrors, in the hosts' preferred order.
    ///   - correlation, failover: the aggregator's sections.
    init(mirrorNames: [String], correlation: String, failover: String) throws {
        try h.run("/usr/sbin/ip", ["netns", "add", ns])
        try h.run("/usr/sbin/ip", ["-n", ns, "link", "set", "lo", "up"])
        // Fill the upstream on the host, then serve its storage in the namespace.
        let fill = try h.startRegistry(name: "upstream")
        try h.pushImage(port: fill, repository: "test/app", tag: "1")
        h.stop(name: "upstream")
        try h.startRegistry(name: "upstream", netns: ns, port: upstream)
        for (i, name) in mirrorNames.enumerated() {
            let port = upstream + 1 + i
            mirrors.append((name, port))
            try h.startRegistry(name: name, netns: ns, port: port, extra: "proxy: {remoteurl: \"http://127.0.0.1:\(upstream)\"}",
                                accessLog: "\(dir)/\(name).access.log")
        }
        try "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n".write(toFile: "\(dir)/resolv.conf", atomically: true, encoding: .utf8)
        try "0123456789abcdef-test-token\n".write(toFile: "\(dir)/api-token", atomically: true, encoding: .utf8)
        chmod("\(dir)/api-token", 0o600)
        try """
        listen: {zmq: "tcp://127.0.0.1:\(zmqPort)", http: "127.0.0.1:\(httpPort)"}
        database: \(dir)/regwatch.db
        keys: {dir: \(dir)/keys}
        apiToken: \(dir)/api-token
        correlation: \(correlation)
        failover: \(failover)
        """.write(toFile: "\(dir)/aggregator.yaml", atomically: true, encoding: .utf8)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", "\(dir)/aggregator.yaml"]).status == 0)
    }

    /// The runtime files of a host in the preferred order, and its agent config.
    /// - Parameter labels: more `name: value` YAML pairs for the host's labels, after `zone`.
    func addHost(_ id: String, zone: String, docker: Bool, daemonExtra: String = "", events: String = "{docker: false, journalUnits: []}",
                 labels: String = "") throws {
        let d = "\(dir)/\(id)"
        let host = Host(id: id, zone: zone, docker: docker, dir: d)
        hosts.append(host)
        try FileManager.default.createDirectory(atPath: "\(d)/certs.d/docker.io", withIntermediateDirectories: true)
        let urls = mirrors.map { url($0.name) }
        let insecure = ([upstream] + mirrors.map(\.port)).map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        let daemonJSON = """
        {
          "registry-mirrors": [\(urls.map { "\"\($0)\"" }.joined(separator: ", "))],
          "insecure-registries": [\(insecure)],
          "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none"\(daemonExtra)
        }

        """
        try daemonJSON.write(toFile: "\(d)/daemon.json", atomically: true, encoding: .utf8)
        originalDaemonJSON[id] = Data(daemonJSON.utf8)
        var hostsToml = "server = \"http://127.0.0.1:\(upstream)\"\n"
        for u in urls { hostsToml += "\n[host.\"\(u)\"]\n  capabilities = [\"pull\", \"resolve\"]\n" }
        try hostsToml.write(toFile: "\(d)/certs.d/docker.io/hosts.toml", atomically: true, encoding: .utf8)
        var conf = "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:\(upstream)\"\ninsecure = true\n"
        for m in mirrors { conf += "\n[[registry.mirror]]\nlocation = \"127.0.0.1:\(m.port)\"\ninsecure = true\n" }
        try conf.write(toFile: "\(d)/registries.conf", atomically: true, encoding: .utf8)

        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(d)/keys"]).status == 0)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", "\(dir)/aggregator.yaml", "--host", id, "--key", "\(d)/keys/agent.pub"]).status == 0)
        let mirrorList = mirrors.map { "{url: \"\(url($0.name))\", insecure: true, trusted: true}" }.joined(separator: ", ")
        try """
        host: {id: \(id), labels: {zone: \(zone)\(labels.isEmpty ? "" : ", " + labels)}}
        aggregator: {endpoint: "tcp://127.0.0.1:\(zmqPort)", serverKey: \(dir)/keys/server.pub, clientKey: \(d)/keys/agent.key, signingKey: \(dir)/keys/signing.pub}
        interval: 1s
        stateDir: \(d)/state
        registries:
          - name: docker.io
            upstream: "http://127.0.0.1:\(upstream)"
            rateLimit: false
            probeImage: test/app:1
            mirrors: [\(mirrorList)]
        runtime:
          \(docker ? "docker: {daemonJSON: \(d)/daemon.json, socket: \(d)/docker.sock, reload: signal, pidFile: \(d)/dockerd.pid}" : "")
          containerd: {certsDir: \(d)/certs.d}
          crio: {registriesConf: \(d)/registries.conf, reload: none}
        events: \(events)
        failover: {maxChangesPerHour: 1000}
        """.write(toFile: "\(d)/agent.yaml", atomically: true, encoding: .utf8)
    }

    /// A real dockerd in the namespace with a dead resolver, reading the host's daemon.json.
    func startDockerd(_ host: Host) throws {
        let d = host.dir
        let socket = "\(d)/docker.sock"
        let dockerd = enter + ["/usr/sbin/dockerd", "--config-file", "\(d)/daemon.json", "--data-root", "\(d)/data", "--exec-root", "\(d)/x",
                               "--pidfile", "\(d)/dockerd.pid", "--host", "unix://\(socket)"]
        let inner = "mount --bind \(dir)/resolv.conf /etc/resolv.conf && exec " + dockerd.map { "'\($0)'" }.joined(separator: " ")
        dockerds[host.id] = try h.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", inner], stderrPath: "\(d)/dockerd.log")
        var up = false
        for _ in 0..<200 where !up {
            up = (try? h.run("/usr/bin/curl", ["-sf", "--unix-socket", socket, "http://localhost/_ping"])) == "OK"
            if !up { usleep(200_000) }
        }
        try #require(up, "dockerd of \(host.id) did not come up")
    }

    /// The containerd that `ctr image pull --hosts-dir` talks to.
    func startContainerd() throws {
        let d = "\(dir)/containerd"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try """
        version = 2
        root = "\(d)/root"
        state = "\(d)/state"
        disabled_plugins = ["io.containerd.grpc.v1.cri"]
        [grpc]
          address = "\(d)/containerd.sock"
        """.write(toFile: "\(d)/config.toml", atomically: true, encoding: .utf8)
        try h.start(enter[0], Array(enter.dropFirst()) + ["/usr/bin/containerd", "--config", "\(d)/config.toml"], stderrPath: "\(d)/containerd.log")
        var up = false
        for _ in 0..<100 where !up {
            up = (try? RegistryHarness.spawnAndWait("/usr/bin/ctr", ["--address", "\(d)/containerd.sock", "version"]))?.0 == 0
            if !up { usleep(100_000) }
        }
        try #require(up, "containerd did not come up")
    }

    func startAggregator() throws {
        aggregator = try h.start(enter[0], Array(enter.dropFirst()) + [CLI.binary("regwatch-aggregator"), "serve", "--config", "\(dir)/aggregator.yaml"],
                                 stderrPath: "\(dir)/aggregator.log")
        #expect(eventually(20) { (try? self.get("/healthz")) == "ok\n" }, "HTTP API did not come up")
    }

    func startAgent(_ id: String) throws {
        agents[id] = try h.start(enter[0], Array(enter.dropFirst()) + [CLI.binary("regwatch-agent"), "run", "--config", "\(dir)/\(id)/agent.yaml"],
                                 stderrPath: "\(dir)/\(id)/agent.log")
    }

    /// Runs a command inside the namespace (with the dead resolver bind-mounted).
    @discardableResult
    func inside(_ args: [String]) throws -> (status: Int32, output: String) {
        let inner = "mount --bind \(dir)/resolv.conf /etc/resolv.conf && exec " + (enter + args).map { "'\($0)'" }.joined(separator: " ") + " 2>&1"
        return try RegistryHarness.spawnAndWait("/usr/bin/unshare", ["-m", "/bin/sh", "-c", inner])
    }

    func get(_ path: String) throws -> String {
        let (status, out) = try RegistryHarness.spawnAndWait("/usr/bin/nsenter", ["--net=/run/netns/\(ns)", "/usr/bin/curl", "-sf", "http://127.0.0.1:\(httpPort)\(path)"])
        guard status == 0 else { throw HarnessError("GET \(path) failed (\(status))") }
        return out
    }

    func json(_ path: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(get(path).utf8)) as? [[String: Any]])
    }

    /// `GET /api/v1/failovers` as (generation, state, mirrors of docker.io, acked, pending, rejected).
    struct Plan: Equatable {
        var generation: Int
        var state: String
        var mirrors: [String]
        var acked: Int
        var pending: Int
        var rejected: Int
        var reason: String

        /// One entry of `GET /api/v1/failovers`.
        init(json p: [String: Any]) {
            generation = p["generation"] as? Int ?? -1
            state = p["state"] as? String ?? ""
            mirrors = (p["mirrors"] as? [String: [String]])?["docker.io"] ?? []
            acked = p["acked"] as? Int ?? -1
            pending = p["pending"] as? Int ?? -1
            rejected = p["rejected"] as? Int ?? -1
            reason = p["reason"] as? String ?? ""
        }
    }

    /// Throws when the API cannot be read: an empty list is an answer, not an error.
    func failovers() throws -> [Plan] {
        try json("/api/v1/failovers").map(Plan.init(json:))
    }

    /// Applied generation per host from `GET /api/v1/hosts`.
    func appliedGenerations() throws -> [String: Int] {
        Dictionary(try json("/api/v1/hosts").map { ($0["id"] as? String ?? "", $0["appliedGeneration"] as? Int ?? -1) }, uniquingKeysWith: { a, _ in a })
    }

    func activeOutages() throws -> [[String: Any]] { try json("/api/v1/outages") }

    /// Generations and applied generations, for failure messages (never throws: it only describes).
    var summary: String {
        do { return "\(try failovers()) applied \(try appliedGenerations())" } catch { return "(API unreadable: \(error))" }
    }

    /// dockerd's effective mirrors (`GET /info`), trailing slashes removed.
    func dockerMirrors(_ host: Host) throws -> [String] {
        let out = try h.run("/usr/bin/curl", ["-sf", "--unix-socket", "\(host.dir)/docker.sock", "http://localhost/info"])
        let info = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        let mirrors = (info["RegistryConfig"] as? [String: Any])?["Mirrors"] as? [String] ?? []
        return mirrors.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// The mirror order each runtime file of `host` holds now.
    func fileMirrors(_ host: Host) throws -> (docker: [String], containerd: [String], crio: [String]) {
        let daemon = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(host.dir)/daemon.json"))) as? [String: Any])
        let toml = try String(contentsOfFile: "\(host.dir)/certs.d/docker.io/hosts.toml", encoding: .utf8)
        let containerd = toml.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("[host.\""), let end = line.lastIndex(of: "\"") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 7)..<end])
        }
        let conf = try String(contentsOfFile: "\(host.dir)/registries.conf", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var crio: [String] = []
        for (i, line) in conf.enumerated() where line.trimmingCharacters(in: .whitespaces) == "[[registry.mirror]]" {
            if let loc = conf[(i + 1)...].first(where: { $0.contains("location") }), let q = loc.firstIndex(of: "\"") {
                crio.append("http://" + loc[loc.index(after: q)...].dropLast())
            }
        }
        return ((daemon["registry-mirrors"] as? [String]) ?? [], containerd, crio)
    }

    /// Lines of a log that contain `text`; a log that cannot be read throws (a check on no log proves nothing).
    func lines(_ path: String, containing text: String) throws -> [Substring] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { $0.contains(text) }
    }

    func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        try pollUntil(seconds, condition)
    }

    func tearDown() {
        for p in agents.values { kill(p.processIdentifier, SIGKILL) }
        if let a = aggregator { kill(a.processIdentifier, SIGKILL) }
        for p in dockerds.values { kill(p.processIdentifier, SIGTERM) }
        _ = try? h.run("/usr/bin/pkill", ["-9", "-f", dir])
        h.stopAll()
        usleep(300_000)
        _ = try? h.run("/usr/sbin/ip", ["netns", "del", ns])
        h.unmountAll()
    }
}
