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
        version: RegwatchVersion.current,
        subcommands: [Serve.self, Status.self, Hosts.self, Outages.self, Failovers.self, Failover.self, Keys.self, Tokens.self, Validate.self]
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
            raiseOpenFileLimit()
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
            let (config, file) = try options.load()
            let status = try config.openStore(configFile: file, readOnly: true, logger: cliLogger).status(now: Date(), staleAfter: config.correlation.staleAfter)
            if json { return try printJSON(status) }
            print(formatTable(["DATABASE", "SCHEMA", "HOSTS", "STALE", "CONNECTED", "PULL EVENTS", "ACTIVE OUTAGES", "SIZE"], [[
                status.path, status.schemaVersion, "\(status.hosts)", "\(status.hostsStale)", "\(status.hostsConnected)",
                "\(status.pullEvents)", "\(status.activeOutages)", "\((status.databaseBytes + status.walBytes) / 1024) KiB",
            ]]))
        }
    }

    struct Hosts: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the hosts the aggregator knows, with their labels and status; forget decommissioned ones.",
            subcommands: [List.self, Forget.self], defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the hosts the aggregator knows, with their labels and status.")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, file) = try options.load()
                let hosts = try config.openStore(configFile: file, readOnly: true, logger: cliLogger).hosts(now: Date(), staleAfter: config.correlation.staleAfter)
                if json { return try printJSON(hosts) }
                if hosts.isEmpty { return print("no hosts have reported to \(config.database) yet") }
                print(formatTable(["HOST", "STATUS", "LABELS", "LAST SEEN", "GENERATION", "AGENT"], hosts.map { h in
                    [h.id, h.status.rawValue, h.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                     RFC3339.format(h.lastSeen), "\(h.appliedGeneration)", h.agentVersion]
                }))
            }
        }

        struct Forget: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove decommissioned hosts from the fleet database (works while serve runs).",
                discussion: "Their pull events and outages stay as history. A host whose agent still reports comes back with its next report: revoke its key first (regwatch-aggregator keys revoke --host ID). Unknown ids: nothing is changed, exit 2 (as every database error).")
            @OptionGroup var options: ConfigOption
            @Argument(help: "Host ids.") var hosts: [String]

            func validate() throws {
                if hosts.isEmpty { throw ValidationError("name at least one host id") }
            }

            func run() throws {
                let (config, file) = try options.load()
                try config.openStore(configFile: file, logger: cliLogger).forget(hosts: hosts)
                let ids = Set(hosts).sorted()
                print("forgot \(ids.count == 1 ? "host" : "\(ids.count) hosts") \(ids.joined(separator: ", "))")
            }
        }
    }

    struct Outages: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List outages the aggregator detected (active ones, or all with --all).")
        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false
        @Flag(name: .long, help: "Include resolved outages.") var all = false

        func run() throws {
            let (config, file) = try options.load()
            let outages = try config.openStore(configFile: file, readOnly: true, logger: cliLogger).outages(activeOnly: !all)
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
            let (config, file) = try options.load()
            let state = try config.openStore(configFile: file, readOnly: true, logger: cliLogger).failoverState() ?? FailoverState()
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
                let (config, file) = try options.load()
                let store = try config.openStore(configFile: file, readOnly: true, logger: cliLogger)
                let settings = FailoverSettings(config.failover, correlation: config.correlation)
                let plans = try FailoverService.preview(store: store, settings: settings, staleAfter: config.correlation.staleAfter)
                if json { return try printJSON(plans.map(\.summary)) }
                // A freeze or a blocked map is why nothing is planned: say so, and what a thaw would start.
                let state = try store.failoverState() ?? FailoverState()
                if let frozen = state.frozen {
                    print("failover is FROZEN since \(RFC3339.format(frozen.since)) (\(frozen.reason)): nothing is planned or sent until a thaw")
                }
                for block in state.blocks {
                    print("blocked: \(FailoverService.describe(block.mirrors)) after generation \(block.generation) halted (\(block.reason)); a thaw, or a change in the outages, lifts it")
                }
                if plans.isEmpty, state.frozen != nil || !state.blocks.isEmpty {
                    let thawed = try FailoverService.preview(store: store, settings: settings, staleAfter: config.correlation.staleAfter, thawed: true)
                    if thawed.isEmpty { return print("after a thaw: no failover needed: every host runs its desired mirror order") }
                    print("after a thaw it would plan:")
                    return printPlans(thawed)
                }
                if plans.isEmpty { return print("no failover needed: every host runs its desired mirror order") }
                printPlans(plans)
            }

            func printPlans(_ plans: [FailoverPlan]) {
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
            subcommands: [Generate.self, Pending.self, Accept.self, Reject.self, List.self, Revoke.self]
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
            static let configuration = CommandConfiguration(
                abstract: "Enroll an agent: bind its CURVE public key to a host id.",
                discussion: "With --key, the key from that file (agent.pub); without, the key of the host's pending join (keys pending). --replace gives an enrolled host a new key (a reinstalled node); its old key is revoked and its open connection closed.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "The agent's host id.") var host: String
            @Option(name: .long, help: "The agent's public key file (agent.pub); default: the host's pending join.") var key: String?
            @Flag(name: .long, help: "Replace the key of a host that is enrolled already.") var replace = false

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, logger: cliLogger)
                let store = EnrollmentStore(backend)
                let pending = PendingJoinStore(backend)
                let publicKey: CurvePublicKey
                if let key {
                    publicKey = try KeyFiles.readEnrollmentKey(key)
                } else {
                    let entry = try pending.pending().filter { $0.host == host }
                    guard entry.count == 1, let only = entry.first else {
                        throw entry.isEmpty ? KeysFileError.noPendingJoin(host) : KeysFileError.severalPendingJoins(host: host, count: entry.count)
                    }
                    publicKey = try CurvePublicKey(z85: only.key)
                }
                let outcome = try store.accept(host: host, key: publicKey, replace: replace)
                try pending.remove(key: publicKey)
                switch outcome {
                case .enrolled: print("enrolled \(host) with key \(publicKey.z85)")
                case .alreadyEnrolled: print("\(host) is already enrolled with this key")
                case .replaced(let old): print("enrolled \(host) with key \(publicKey.z85), replacing \(old) (revoked; its connection is closed)")
                }
            }
        }

        struct Pending: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List joins waiting for an operator (accept with keys accept --host ID, drop with keys reject --host ID).")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, readOnly: true, logger: cliLogger)
                let entries = try PendingJoinStore(backend).pending()
                if json { return try printJSON(entries) }
                if entries.isEmpty { return print("no joins pending in \(backend.location)") }
                print(formatTable(["HOST", "KEY", "TOKEN", "LABELS", "FIRST SEEN", "LAST SEEN", "ATTEMPTS", "WHY PENDING"], entries.map { e in
                    [e.host, e.key, e.token, e.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                     RFC3339.format(e.firstSeen), RFC3339.format(e.lastSeen), "\(e.attempts)", e.reason]
                }))
            }
        }

        struct Reject: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Reject the pending joins of a host: their keys are refused from now on.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "The host id of the pending join.") var host: String

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, logger: cliLogger)
                for e in try PendingJoinStore(backend).reject(host: host) { print("rejected \(e.host) (key \(e.key))") }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List enrolled agents (revoked ones too).")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, readOnly: true, logger: cliLogger)
                let records = try EnrollmentStore(backend).records()
                if json { return try printJSON(records) }
                if records.isEmpty { return print("no agents enrolled in \(backend.location)") }
                print(formatTable(["HOST", "STATUS", "ACCEPTED", "VIA", "KEY"], records.map { r in
                    [r.host, r.revokedAt.map { "\(r.revokedReason ?? "revoked") \(RFC3339.format($0))" } ?? "active", RFC3339.format(r.acceptedAt), r.via ?? "keys accept", r.key]
                }))
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a host's key: its open connection is closed within a second and the key is refused from then on.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "The agent's host id.") var host: String

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, logger: cliLogger)
                let record = try EnrollmentStore(backend).revoke(host: host)
                print("revoked \(record.host) (key \(record.key))")
            }
        }
    }

    struct Tokens: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bootstrap tokens: an agent that joins with a valid one is enrolled at once (enrollment.mode: token).",
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Make a token and print it once on stdout; only its hash is kept.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "A name for the token (letters, digits, . _ -).") var name: String
            @Option(name: .long, help: "Lifetime, e.g. 24h, 30m; 0 for none.") var ttl = "24h"
            @Option(name: .customLong("max-uses"), help: "Joins it may enroll; default unlimited.") var maxUses: Int?

            func validate() throws {
                guard DurationText.parse(ttl) != nil else { throw ValidationError("--ttl: expected a duration like 24h or 30m, got \"\(ttl)\"") }
                if let maxUses, maxUses < 1 { throw ValidationError("--max-uses must be at least 1") }
            }

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, logger: cliLogger)
                let d = DurationText.parse(ttl)!
                print(try TokenStore(backend).create(name: name, ttl: d == .zero ? nil : d, maxUses: maxUses))
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List tokens (name, created, expires, uses, state); never the token.")
            @OptionGroup var options: ConfigOption
            @Flag(name: .long, help: "JSON output.") var json = false

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, readOnly: true, logger: cliLogger)
                let tokens = try TokenStore(backend).list()
                if json { return try printJSON(tokens) }
                if tokens.isEmpty { return print("no tokens in \(backend.location)") }
                print(formatTable(["NAME", "STATE", "CREATED", "EXPIRES", "USES"], tokens.map { t in
                    [t.name, t.state, RFC3339.format(t.createdAt), t.expiresAt.map(RFC3339.format) ?? "never", "\(t.uses)\(t.maxUses.map { "/\($0)" } ?? "")"]
                }))
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a token: joins presenting it are refused (agents it enrolled stay enrolled).")
            @OptionGroup var options: ConfigOption
            @Argument(help: "The token's name.") var name: String

            func run() throws {
                let (config, file) = try options.load()
                let backend = try config.enrollmentBackend(configFile: file, logger: cliLogger)
                try TokenStore(backend).revoke(name: name)
                print("revoked token \(name)")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the config file, the key files in keys.dir and the listen endpoint; exit 2 on the first problem.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let (config, file) = try options.load()
            let backend = try config.enrollmentBackend(configFile: file, readOnly: true, logger: cliLogger)
            if !config.insecure {
                do { _ = try ServerKeys.load(keysDir: config.keysDir) } catch {
                    throw ConfigError(file: file, key: "keys.dir", message: "\(error.description) (run: regwatch-aggregator keys generate)")
                }
            }
            try EndpointCheck.validateBindEndpoint(config.zmqEndpoint, configFile: file, key: "listen.zmq")
            let token = try APIToken.load(config.apiToken, configFile: file)
            let enrolled = try EnrollmentStore(backend).records().filter(\.isActive).count
            let pending = try PendingJoinStore(backend).pending().count
            let tokens = try TokenStore(backend).list().filter { $0.state == "valid" }.count
            let signing = (try? KeyFiles.readSigningKey("\(config.keysDir)/\(KeyFiles.signingSecret)")) != nil
            let failover = signing ? "failover \(config.failover.mode.rawValue)" : "failover advise only (no signing key)"
            print("\(file): ok (zmq \(config.zmqEndpoint)\(config.insecure ? " INSECURE" : " CURVE"), http \(config.httpAddress), \(enrolled) agents enrolled, \(pending) joins pending, enrollment \(config.enrollment.mode.rawValue) with \(tokens) valid tokens, \(failover), \(token == nil ? "no API token: freeze/thaw disabled" : "API token set"))")
        }
    }
}

/// Every agent connection is a file descriptor: a fleet needs more than the usual soft limit of 1024,
/// so `serve` raises it to the hard limit (what systemd's LimitNOFILE or the container runtime allows).
func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}

/// The logger CLI commands give the store: PostgreSQL's connection chatter stays out of their output,
/// errors reach the operator as the command's own one-line message.
let cliLogger: Logger = {
    var logger = Logger(label: "regwatch.cli")
    logger.logLevel = .critical
    return logger
}()

await CLIRunner.main(AggregatorCommand.self)

