import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import RegwatchAggregator
import RegwatchCLI
import RegwatchShared

struct AggregatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regwatch-aggregator",
        abstract: "Collects regwatch agents' reports, tells fleet outages from local ones, and steers mirror failover.",
        subcommands: [Serve.self, Status.self, Hosts.self, Outages.self, Failovers.self, Failover.self, Keys.self, Validate.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Aggregator configuration file (built-in defaults when the default path does not exist).")
    var config: String?

    func load() throws -> (AggregatorConfig, String) {
        if let config { return (try AggregatorConfig.load(config), config) }
        if FileManager.default.fileExists(atPath: AggregatorConfig.defaultPath) {
            return (try AggregatorConfig.load(AggregatorConfig.defaultPath), AggregatorConfig.defaultPath)
        }
        return (AggregatorConfig(), "(built-in defaults)")
    }
}

extension AggregatorCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the aggregator: ZeroMQ ingest over CURVE, the SQLite store and the HTTP API.",
            discussion: "Stops cleanly on SIGTERM or SIGINT."
        )
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let (config, file) = try options.load()
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let server = AggregatorServer(config: config, configFile: file, logger: Logger(label: "regwatch.aggregator"), metricsText: { MetricNames.withHelp(registry.emitToString()) })
            try await server.run()
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Summarise the fleet database (works while serve runs).")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() throws {
            let (config, _) = try options.load()
            let status = try FleetStore(path: config.database, readOnly: true).status(now: Date(), staleAfter: config.correlation.staleAfter)
            if json { return try printJSON(status) }
            print(formatTable(["DATABASE", "SCHEMA", "HOSTS", "STALE", "CONNECTED", "PULL EVENTS", "ACTIVE OUTAGES", "SIZE"], [[
                status.path, status.schemaVersion, "\(status.hosts)", "\(status.hostsStale)", "\(status.hostsConnected)",
                "\(status.pullEvents)", "\(status.activeOutages)", "\((status.databaseBytes + status.walBytes) / 1024) KiB",
            ]]))
        }
    }

    struct Hosts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the hosts the aggregator knows, with their labels and status.")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() throws {
            let (config, _) = try options.load()
            let hosts = try FleetStore(path: config.database, readOnly: true).hosts(now: Date(), staleAfter: config.correlation.staleAfter)
            if json { return try printJSON(hosts) }
            if hosts.isEmpty { return print("no hosts have reported to \(config.database) yet") }
            print(formatTable(["HOST", "STATUS", "LABELS", "LAST SEEN", "GENERATION", "AGENT"], hosts.map { h in
                [h.id, h.status.rawValue, h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                 RFC3339.format(h.lastSeen), "\(h.appliedGeneration)", h.agentVersion]
            }))
        }
    }

    struct Outages: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List outages the aggregator detected (active ones, or all with --all).")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false
        @Flag(name: .long, help: "Include resolved outages.") var all = false

        func run() throws {
            let (config, _) = try options.load()
            let outages = try FleetStore(path: config.database, readOnly: true).outages(activeOnly: !all)
            if json { return try printJSON(outages) }
            if outages.isEmpty { return print(all ? "no outages recorded" : "no active outages") }
            print(formatTable(["ID", "KIND", "STATE", "SCOPE", "CLASS", "HOSTS", "STARTED", "ENDED", "EVIDENCE"], outages.map { o in
                let scope = [o.endpoint, o.zone.map { "zone=\($0)" }, o.host.map { "host=\($0)" }, o.egress.map { "egress=\($0)" }].compactMap { $0 }.joined(separator: " ")
                let evidence = o.evidence.first.map { "\($0.host): \($0.detail.prefix(60))" } ?? ""
                return ["\(o.id)", o.kind.rawValue, o.state.rawValue, scope, o.errorClass?.rawValue ?? "-", "\(o.affectedHosts)/\(o.totalHosts)",
                        RFC3339.format(o.startedAt), o.endedAt.map(RFC3339.format) ?? "-", evidence]
            }))
        }
    }

    struct Failovers: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List failover generations, newest first: state, reason, mirror order and acks.")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() throws {
            let (config, _) = try options.load()
            let state = try FleetStore(path: config.database, readOnly: true).failoverState() ?? FailoverState()
            let controller = FailoverController(settings: FailoverSettings(config.failover, correlation: config.correlation), state: state)
            if json { return try printJSON(controller.summaries) }
            if let frozen = state.frozen { print("FROZEN since \(RFC3339.format(frozen.since)): \(frozen.reason)\n") }
            if controller.plans.isEmpty { return print("no failover generations yet (generation \(state.generation))") }
            print(formatTable(["GEN", "KIND", "STATE", "MIRRORS", "ACKED", "PENDING", "REJECTED", "CREATED", "REASON"], controller.plans.map { p in
                ["\(p.generation)", p.kind.rawValue, p.state.rawValue, FailoverService.describe(p.mirrors), "\(p.acked)", "\(p.pending)", "\(p.rejected)",
                 RFC3339.format(p.createdAt), String(p.reason.prefix(100))]
            }))
        }
    }

    struct Failover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Steer failover: freeze or thaw it (through the running aggregator's API), or show what it would plan now.",
            subcommands: [Freeze.self, Thaw.self, Plan.self])

        struct Freeze: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop new generations and sends until thawed (POST /api/v1/failovers/freeze).")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "Why (logged and shown by failovers).") var reason = "frozen by an operator"

            func run() async throws {
                let (config, file) = try options.load()
                print(try await FailoverAPIClient(config: config, configFile: file).post("freeze", reason: reason))
            }
        }

        struct Thaw: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Resume failover after a freeze (POST /api/v1/failovers/thaw).")
            @OptionGroup var options: ConfigOption

            func run() async throws {
                let (config, file) = try options.load()
                print(try await FailoverAPIClient(config: config, configFile: file).post("thaw", reason: nil))
            }
        }

        struct Plan: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the live generations and what failover would plan now, without sending anything.")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, _) = try options.load()
                let store = try FleetStore(path: config.database, readOnly: true)
                let plans = try FailoverService.preview(
                    store: store, settings: FailoverSettings(config.failover, correlation: config.correlation), staleAfter: config.correlation.staleAfter)
                if json { return try printJSON(plans.map(\.summary)) }
                if plans.isEmpty { return print("no failover needed: every host runs its desired mirror order") }
                for p in plans {
                    let state = p.state == .advised ? "would plan" : p.state.rawValue
                    print("generation \(p.generation) (\(p.kind.rawValue), \(state)): \(FailoverService.describe(p.mirrors))")
                    print("  reason: \(p.reason)")
                    print("  canaries: \(p.canaries.joined(separator: ", ")); hosts: \(p.hosts.keys.sorted().joined(separator: ", "))")
                }
            }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the aggregator's keys and the enrolled agents.",
            subcommands: [Generate.self, Accept.self, List.self, Revoke.self]
        )

        struct Generate: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write server.key/server.pub (CURVE) and signing.key/signing.pub (Ed25519) into keys.dir if absent.")
            @OptionGroup var options: ConfigOption

            func run() throws {
                let (config, _) = try options.load()
                let written = try ServerKeys.generateMissing(keysDir: config.keysDir)
                if written.isEmpty {
                    print("\(config.keysDir): keys already present; nothing written")
                } else {
                    for file in written { print("wrote \(file)") }
                }
                let paths = ServerKeys.Paths(keysDir: config.keysDir)
                print("agents pin \(paths.serverPublic) as aggregator.serverKey and \(paths.signingPublic) as aggregator.signingKey")
            }
        }

        struct Accept: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Enroll an agent: bind its CURVE public key to a host id.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "The agent's host id.") var host: String
            @Option(name: .long, help: "The agent's public key file (agent.pub).") var key: String

            func run() throws {
                let (config, _) = try options.load()
                let publicKey = try KeyFiles.readEnrollmentKey(key)
                let store = EnrollmentStore(keysDir: config.keysDir)
                switch try store.accept(host: host, key: publicKey) {
                case .enrolled: print("enrolled \(host) with key \(publicKey.z85)")
                case .alreadyEnrolled: print("\(host) is already enrolled with this key")
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List enrolled agents (revoked ones too).")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, _) = try options.load()
                let records = try EnrollmentStore(keysDir: config.keysDir).records()
                if json { return try printJSON(records) }
                if records.isEmpty { return print("no agents enrolled in \(config.keysDir)") }
                print(formatTable(["HOST", "STATUS", "ACCEPTED", "KEY"], records.map { r in
                    [r.host, r.isActive ? "active" : "revoked \(RFC3339.format(r.revokedAt!))", RFC3339.format(r.acceptedAt), r.key]
                }))
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a host's key: new connections with it are refused.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "The agent's host id.") var host: String

            func run() throws {
                let (config, _) = try options.load()
                let record = try EnrollmentStore(keysDir: config.keysDir).revoke(host: host)
                print("revoked \(record.host) (key \(record.key))")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the config file, the key files in keys.dir and the listen endpoint; exit 2 on the first problem.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let (config, file) = try options.load()
            if !config.insecure {
                do { _ = try ServerKeys.load(keysDir: config.keysDir) } catch {
                    throw ConfigError(file: file, key: "keys.dir", message: "\(error.description) (run: regwatch-aggregator keys generate)")
                }
            }
            try EndpointCheck.validateBindEndpoint(config.zmqEndpoint, configFile: file, key: "listen.zmq")
            let token = try APIToken.load(config.apiToken, configFile: file)
            let enrolled = try EnrollmentStore(keysDir: config.keysDir).records().filter(\.isActive).count
            let signing = (try? KeyFiles.readSigningKey("\(config.keysDir)/\(KeyFiles.signingSecret)")) != nil
            let failover = signing ? "failover \(config.failover.mode.rawValue)" : "failover advise only (no signing key)"
            print("\(file): ok (zmq \(config.zmqEndpoint)\(config.insecure ? " INSECURE" : " CURVE"), http \(config.httpAddress), \(enrolled) agents enrolled, \(failover), \(token == nil ? "no API token: freeze/thaw disabled" : "API token set"))")
        }
    }
}

await CLIRunner.main(AggregatorCommand.self)
