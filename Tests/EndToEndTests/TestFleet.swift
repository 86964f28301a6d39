import Foundation
import GRDB
import RegwatchShared
import RegwatchTestSupport
import Testing

/// A local fleet for end-to-end tests: aggregator keys and config, real registries (an upstream with
/// `library/alpine:3.20` and a pull-through mirror of it), agents with their keys and configs, and the
/// `regwatch-aggregator serve` / `regwatch-agent run` processes, all under one temp directory.
final class Fleet: @unchecked Sendable {
    let h = RegistryHarness("fleet")
    let zmqPort = RegistryHarness.freePort()
    let httpPort = RegistryHarness.freePort()
    var upstream = 0
    var mirror = 0
    var aggregator: Process?
    var agents: [String: Process] = [:]
    var dir: String { h.dir }
    var config: String { "\(dir)/aggregator.yaml" }
    var database: String { "\(dir)/regwatch.db" }

    /// The ZeroMQ address agents connect to (an address of this host; a veth address for namespaced agents).
    let zmqHost: String

    /// A PostgreSQL server holding the fleet instead of the SQLite file (``init(correlation:extra:zmqHost:postgres:)``).
    let postgres: PostgresServer?

    /// - Parameters:
    ///   - correlation: the aggregator's `correlation:` section; `extra`: more top-level YAML.
    ///   - postgres: keep the fleet in this server's `regwatch` database instead of the SQLite file.
    init(correlation: String = "{staleAfter: 3}", extra: String = "", zmqHost: String = "127.0.0.1", postgres: PostgresServer? = nil) throws {
        self.zmqHost = zmqHost
        self.postgres = postgres
        upstream = try h.startRegistry(name: "upstream")
        try h.pushImage(port: upstream, repository: "library/alpine", tag: "3.20")
        mirror = try h.startRegistry(name: "mirror", extra: "proxy: {remoteurl: \"http://127.0.0.1:\(upstream)\"}")
        try """
        listen: {zmq: "tcp://\(zmqHost):\(zmqPort)", http: "127.0.0.1:\(httpPort)"}
        \(postgres.map { "database: \($0.url())\ndatabasePasswordFile: \($0.passwordFile)" } ?? "database: \(database)")
        keys: {dir: \(dir)/keys}
        correlation: \(correlation)
        \(extra)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", config]).status == 0)
    }

    /// The default registries section: docker.io with the upstream and the pull-through mirror.
    var registries: String {
        """
        registries:
          - name: docker.io
            upstream: "http://127.0.0.1:\(upstream)"
            rateLimit: false
            probeImage: library/alpine:3.20
            mirrors: [{url: "http://127.0.0.1:\(mirror)", insecure: true}]
        """
    }

    /// Writes an agent's key and config; enrolls it unless `enroll` is false.
    func addAgent(_ id: String, zone: String, egress: String? = nil, enroll: Bool = true, events: String = "{journalUnits: []}", registries: String? = nil) throws {
        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/\(id)"]).status == 0)
        if enroll {
            #expect(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", id, "--key", "\(dir)/\(id)/agent.pub"]).status == 0)
        }
        try """
        host: {id: \(id), labels: {zone: \(zone), egress: "\(egress ?? "198.51.100.\(zone.dropFirst())")"}}
        aggregator: {endpoint: "tcp://\(zmqHost):\(zmqPort)", serverKey: \(dir)/keys/server.pub, clientKey: \(dir)/\(id)/agent.key, signingKey: \(dir)/keys/signing.pub}
        interval: 1s
        stateDir: \(dir)/\(id)/state
        \(registries ?? self.registries)
        events: \(events)
        """.write(toFile: "\(dir)/\(id).yaml", atomically: true, encoding: .utf8)
    }

    /// Starts `regwatch-agent run`; with `prefix`, under that command (e.g. a namespace wrapper).
    func startAgent(_ id: String, prefix: [String] = []) throws {
        let command = prefix + [CLI.binary("regwatch-agent"), "run", "--config", "\(dir)/\(id).yaml"]
        agents[id] = try h.start(command[0], Array(command.dropFirst()), stderrPath: "\(dir)/\(id).log")
    }

    func startAggregator() throws {
        aggregator = try h.start(CLI.binary("regwatch-aggregator"), ["serve", "--config", config], stderrPath: "\(dir)/aggregator.log")
        #expect(RegistryHarness.waitForPort(httpPort), "HTTP API did not come up")
    }

    func kill9Aggregator() {
        guard let p = aggregator else { return }
        kill(p.processIdentifier, SIGKILL)
        for _ in 0..<100 where !RegistryHarness.hasExited(p) { usleep(20_000) }
        aggregator = nil
    }

    func get(_ path: String) throws -> String {
        try h.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(httpPort)\(path)"])
    }

    /// The value of one series on the aggregator's `/metrics` (see ``metricValue(in:_:)``).
    func metric(_ series: String) throws -> Double? { metricValue(in: try get("/metrics"), series) }

    func json(_ path: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(get(path).utf8)) as? [[String: Any]])
    }

    /// Polls until `condition` holds or `seconds` pass.
    func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        try pollUntil(seconds, condition)
    }

    deinit {
        for p in agents.values where !RegistryHarness.hasExited(p) { kill(p.processIdentifier, SIGKILL) }
        if let a = aggregator, !RegistryHarness.hasExited(a) { kill(a.processIdentifier, SIGKILL) }
        h.stopAll()
    }
}

/// The value of one series (`name{labels}` exactly as the exposition prints them) in Prometheus text;
/// nil when the series is not there.
func metricValue(in exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// Polls `condition` every 200 ms until it holds or `seconds` pass; the last answer decides. An error
/// while polling (a server restarting) counts as "not yet"; one from the last try is thrown, so a
/// condition that cannot be evaluated never passes.
func pollUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if (try? condition()) == true { return true }
        usleep(200_000)
    }
    return try condition()
}
