import Foundation
import RegwatchShared

/// The aggregator's configuration (`/etc/regwatch/aggregator.yaml`). Every key, its default and its
/// meaning are listed in `deploy/aggregator.example.yaml`; unknown keys are errors.
public struct AggregatorConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/regwatch/aggregator.yaml"

    public struct Correlation: Sendable, Equatable {
        public var window: Duration = .seconds(30)
        public var openAfter = 2
        public var recoveryHold: Duration = .seconds(300)
        public var minHosts = 3
        public var minZones = 2
        public var staleAfter = 3
        /// Share of its endpoints a host must fail to count as broken (`host_local`, `zone_network`).
        public var hostLocalShare = 0.6
        /// Share of a zone's hosts that must be broken for `zone_network`.
        public var zoneFailShare = 0.6
        /// Broken hosts a zone needs for `zone_network`.
        public var zoneMinHosts = 2
        /// Share of the hosts reporting an endpoint that must fail it (besides `minHosts`).
        public var endpointFailShare = 0.5
        /// Remaining pull quota under which an egress counts as exhausted.
        public var rateLimitThreshold = 10
        /// Days before certificate expiry that open `cert_expiring`.
        public var certWarningDays = 14
    }

    public struct Failover: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable, CaseIterable { case auto, advise }
        public var mode = Mode.auto
        public var canaryShare = 0.1
        public var maxChangesPerHostPerHour = 4
        /// A host not yet on its target is sent the directive again after this long.
        public var resendInterval: Duration = .seconds(60)
        /// Canaries not all applied and probed healthy after this long halt the rollout.
        public var canaryTimeout: Duration = .seconds(600)
        /// A directive expires this long after it was issued (each re-send is issued anew).
        public var commandTTL: Duration = .seconds(600)
    }

    public struct Webhook: Sendable, Equatable {
        public enum Format: String, Sendable, Equatable, CaseIterable { case alertmanager, json }
        public var url: String
        public var format: Format
    }

    /// `enrollment:` — how keys that are not enrolled yet get in (`docs/enrollment.md`).
    public struct Enrollment: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable, CaseIterable {
            /// Every join waits in the pending list for `keys accept`.
            case manual
            /// A join with a valid bootstrap token is accepted at once (if its host id matches the pattern).
            case token
        }
        public var mode = Mode.manual
        /// A regular expression the whole host id must match for a token join to be accepted at once;
        /// nil: any valid host id. A join that does not match waits in the pending list.
        public var hostPattern: String?
        public var maxPending = 1000
        public var joinsPerSecond = 50
    }

    public var zmqEndpoint = "tcp://0.0.0.0:7450"
    public var httpAddress = "127.0.0.1:7451"
    /// An SQLite file path, or a `postgres://` URL (then ``postgres`` is set).
    public var database = "/var/lib/regwatch/regwatch.db"
    public var postgres: PostgresLocation?
    /// The PostgreSQL password's file; without it, libpq's password file (`PGPASSFILE`, `~/.pgpass`).
    public var databasePasswordFile: String?
    /// How often aggregators sharing a PostgreSQL database check the leader lock (`leader.checkInterval`).
    public var leaderCheckInterval: Duration = .seconds(2)
    public var keysDir = "/etc/regwatch/keys"
    public var apiToken: String?
    public var insecure = false
    public var correlation = Correlation()
    public var failover = Failover()
    public var webhooks: [Webhook] = []
    public var transport = TransportLimits()
    public var enrollment = Enrollment()

    public init() {}

    public static func load(_ path: String) throws(ConfigError) -> AggregatorConfig {
        try parse(ConfigNode.load(path))
    }

    public static func parse(_ root: ConfigNode) throws(ConfigError) -> AggregatorConfig {
        var c = AggregatorConfig()
        let listen = root["listen"]
        c.zmqEndpoint = try listen["zmq"].string(default: c.zmqEndpoint)!
        c.httpAddress = try listen["http"].string(default: c.httpAddress)!
        try listen.rejectUnknownKeys()
        c.database = try root["database"].string(default: c.database)!
        if PostgresLocation.isURL(c.database) {
            do { c.postgres = try PostgresLocation.parse(c.database) } catch { throw root["database"].error(error.message) }
        } else if c.database.contains("://") {
            throw root["database"].error("expected a file path or a postgres:// URL")
        }
        c.databasePasswordFile = try root["databasePasswordFile"].string()
        if c.databasePasswordFile != nil, c.postgres == nil {
            throw root["databasePasswordFile"].error("only a postgres:// database has a password; database is a file")
        }
        let leader = root["leader"]
        c.leaderCheckInterval = try leader["checkInterval"].duration(default: c.leaderCheckInterval)
        guard c.leaderCheckInterval >= .milliseconds(200), c.leaderCheckInterval <= .seconds(60) else {
            throw leader["checkInterval"].error("must be between 200ms and 60s")
        }
        try leader.rejectUnknownKeys()
        let keys = root["keys"]
        c.keysDir = try keys["dir"].string(default: c.keysDir)!
        try keys.rejectUnknownKeys()
        c.apiToken = try root["apiToken"].string()
        c.insecure = try root["insecure"].bool(default: false)

        let cor = root["correlation"]
        c.correlation.window = try cor["window"].duration(default: c.correlation.window)
        guard c.correlation.window >= .seconds(1) else { throw cor["window"].error("must be at least 1s") }
        c.correlation.openAfter = try cor["openAfter"].int(default: c.correlation.openAfter, range: 1...1000)
        c.correlation.recoveryHold = try cor["recoveryHold"].duration(default: c.correlation.recoveryHold)
        c.correlation.minHosts = try cor["minHosts"].int(default: c.correlation.minHosts, range: 1...100_000)
        c.correlation.minZones = try cor["minZones"].int(default: c.correlation.minZones, range: 1...1000)
        c.correlation.staleAfter = try cor["staleAfter"].int(default: c.correlation.staleAfter, range: 1...1000)
        c.correlation.hostLocalShare = try cor["hostLocalShare"].double(default: c.correlation.hostLocalShare, range: 0.01...1.0)
        c.correlation.zoneFailShare = try cor["zoneFailShare"].double(default: c.correlation.zoneFailShare, range: 0.01...1.0)
        c.correlation.zoneMinHosts = try cor["zoneMinHosts"].int(default: c.correlation.zoneMinHosts, range: 1...100_000)
        c.correlation.endpointFailShare = try cor["endpointFailShare"].double(default: c.correlation.endpointFailShare, range: 0.01...1.0)
        c.correlation.rateLimitThreshold = try cor["rateLimitThreshold"].int(default: c.correlation.rateLimitThreshold, range: 0...1_000_000)
        c.correlation.certWarningDays = try cor["certWarningDays"].int(default: c.correlation.certWarningDays, range: 0...3650)
        try cor.rejectUnknownKeys()

        let fo = root["failover"]
        let mode = try fo["mode"].string(default: "auto")!
        guard let m = Failover.Mode(rawValue: mode) else { throw fo["mode"].error("expected auto or advise, got \"\(mode)\"") }
        c.failover.mode = m
        c.failover.canaryShare = try fo["canaryShare"].double(default: c.failover.canaryShare, range: 0.0...1.0)
        c.failover.maxChangesPerHostPerHour = try fo["maxChangesPerHostPerHour"].int(default: c.failover.maxChangesPerHostPerHour, range: 1...3600)
        for (key, path) in [("resendInterval", \Failover.resendInterval), ("canaryTimeout", \Failover.canaryTimeout), ("commandTTL", \Failover.commandTTL)] {
            let d = try fo[key].duration(default: c.failover[keyPath: path])
            guard d >= .seconds(1), d <= .seconds(86_400) else { throw fo[key].error("must be between 1s and 24h") }
            c.failover[keyPath: path] = d
        }
        try fo.rejectUnknownKeys()

        let alerts = root["alerts"]
        for hook in try alerts["webhooks"].list() {
            let url = try hook["url"].requiredString()
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil else {
                throw hook["url"].error("expected an http(s) URL, got \"\(url)\"")
            }
            let format = try hook["format"].string(default: "alertmanager")!
            guard let f = Webhook.Format(rawValue: format) else { throw hook["format"].error("expected alertmanager or json, got \"\(format)\"") }
            c.webhooks.append(Webhook(url: url, format: f))
            try hook.rejectUnknownKeys()
        }
        try alerts.rejectUnknownKeys()

        c.transport = try TransportLimitsConfig.parse(root["transport"], agent: false)

        let en = root["enrollment"]
        let enrollMode = try en["mode"].string(default: c.enrollment.mode.rawValue)!
        guard let em = Enrollment.Mode(rawValue: enrollMode) else { throw en["mode"].error("expected manual or token, got \"\(enrollMode)\"") }
        c.enrollment.mode = em
        if let pattern = try en["hostPattern"].string() {
            guard (try? Regex(pattern)) != nil else { throw en["hostPattern"].error("\"\(pattern.prefix(80))\" is not a regular expression") }
            c.enrollment.hostPattern = pattern
        }
        c.enrollment.maxPending = try en["maxPending"].int(default: c.enrollment.maxPending, range: 1...1_000_000)
        c.enrollment.joinsPerSecond = try en["joinsPerSecond"].int(default: c.enrollment.joinsPerSecond, range: 1...100_000)
        try en.rejectUnknownKeys()
        try root.rejectUnknownKeys()
        return c
    }
}
