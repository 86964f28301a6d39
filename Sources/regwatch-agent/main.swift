import ArgumentParser
import FoundationEssentials
import Glibc
import RegwatchAgent
import RegwatchCLI
import RegwatchShared
import Logging
import ServiceLifecycle

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regwatch-agent",
        abstract: "Watches this host's path to its container registries and reports to the regwatch aggregator.",
        version: RegwatchVersion.current,
        subcommands: [Run.self, Check.self, Diagnose.self, Health.self, Failover.self, Restore.self, Keys.self, Validate.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Agent configuration file.")
    var config: String = AgentConfig.defaultPath
    @Option(name: .customLong("host-root"), help: ArgumentHelp("Where the host's / is mounted (an agent in a container); wins over host.root in the config.", valueName: "dir"))
    var hostRoot: String?

    func validate() throws { _ = try parseHostRoot(hostRoot) }

    func load() throws -> AgentConfig { try AgentConfig.load(config, hostRoot: parseHostRoot(hostRoot)) }
}

extension AgentCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the agent: a check cycle every interval, each published to the aggregator as a report.",
            discussion: "Stops cleanly on SIGTERM or SIGINT."
        )

        @OptionGroup var options: ConfigOption

        func run() async throws {
            ProcessTuning.forSmallDaemon()
            let config = try options.load()
            let logger = Logger(label: "regwatch.agent")
            if try AgentIdentity.ensureKey(config, configFile: options.config) {
                logger.notice("made this agent's key pair; only its public half leaves the host", metadata: ["file": "\(config.hostRoot.shown(config.aggregator.clientKey ?? ""))"])
            }
            let credentials = try AgentCredentials.load(config, configFile: options.config)
            let dockerCredentials = try CheckCycle.loadCredentials(config)
            // Enrollment: with CURVE, the agent connects as a joining peer until the aggregator admits its key.
            var routingID: String?
            if case .curve(let serverKey, let keys) = credentials.security {
                routingID = JoinService.routingID(config: config, keys: keys, serverKey: serverKey)
            }
            let client = DealerClient(configuration: credentials.dealerConfiguration(config, routingID: routingID), logger: logger)
            var join: JoinService?
            if case .curve(let serverKey, let keys) = credentials.security {
                join = JoinService(config: config, client: client, keys: keys, serverKey: serverKey, logger: logger)
            }
            try client.start()
            // The liveness probe waits for this process's first cycle, not a previous one's heartbeat.
            unlink(LastCycleFile(stateDir: config.stateDir).path)
            let spool = try EventSpool(directory: config.stateDir, maxBytes: config.events.spoolMaxBytes)
            let sink = PullEventSink(logger: logger)
            let publisher = EventPublisher(hostID: config.host.id, spool: spool, sink: sink, client: client, settings: config.events, logger: logger, gate: join?.gate)
            let curl = CurlMultiRunner()
            let sources = EventSourcesService(sources: PullEventSources.make(config, runner: curl, logger: logger), sink: sink)
            let cycle = CheckCycle(config: config, prober: RegistryProber(runner: curl), credentials: dockerCredentials)
            let failover = try FailoverCommandService.make(config: config, verifier: credentials.commandVerifier, client: client, logger: logger)
            let scheduler = ReportScheduler(
                config: config, cycle: cycle, client: client, logger: logger, eventSink: sink,
                appliedGeneration: { failover.appliedGeneration }, gate: join?.gate,
                spool: { let s = spool.statistics; return SpoolStatus(pending: s.pending, dropped: s.dropped) })
            logger.info("agent running", metadata: ["host.id": "\(config.host.id)", "aggregator": "\(config.aggregator.endpoints.joined(separator: ","))", "interval": "\(config.interval)"])
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: client),
                .init(service: AgentInbox(client: client, publisher: publisher, failover: failover, join: join, logger: logger)),
                .init(service: failover),
                .init(service: publisher),
                .init(service: sources),
                .init(service: scheduler, successTerminationBehavior: .gracefullyShutdownGroup),
            ]
            if let join { services.append(.init(service: join)) }
            let group = ServiceGroup(configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one check cycle on this host: every registry endpoint and the runtimes' mirror configuration.",
            discussion: "Exit 0 when everything is healthy, 1 when problems were found, 2 on a usage or configuration error."
        )

        @OptionGroup var options: HostOptions
        @Flag(name: .long, help: "JSON output.") var json = false
        @Option(name: .customLong("repeat"), help: "Run this many cycles back to back and print the last (for measuring the probe engine).")
        var repeatCount: Int = 1

        func validate() throws {
            guard (1...100_000).contains(repeatCount) else { throw ValidationError("--repeat must be between 1 and 100000") }
        }

        func run() async throws {
            let curl = CurlMultiRunner()
            let setup = try await options.setup(runner: curl)
            let cycle = CheckCycle(config: setup.config, prober: RegistryProber(runner: curl), credentials: setup.credentials, proxy: setup.proxy)
            var report = await cycle.run()
            for _ in 1..<repeatCount { report = await cycle.run() }
            report.discovery = setup.discovery
            if json {
                try printJSON(report)
            } else {
                if let d = setup.discovery { print(formatDiscovery(d)) }
                print(formatCheckTable(report))
            }
            if !report.healthy { throw ExitCode.problems }
        }
    }

    struct Diagnose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow the pull path a runtime would take for IMAGE and say what fails first, why, and what to do.",
            discussion: "Exit 0 when the image pulls cleanly, 1 when a problem was found, 2 on a usage or configuration error."
        )

        @OptionGroup var options: HostOptions
        @Flag(name: .long, help: "JSON output.") var json = false
        @Option(name: .long, help: ArgumentHelp("Also write a Markdown summary for an incident ticket to this file (secrets redacted).", valueName: "file"))
        var report: String?
        @Argument(help: "The image, as a runtime would be asked for it (e.g. alpine:3.20, registry.example:5000/team/app:1).")
        var image: String

        func validate() throws {
            guard ImageReference(image) != nil else { throw ValidationError("\"\(image)\" is not an image reference") }
        }

        func run() async throws {
            let reference = ImageReference(image)!
            let curl = CurlMultiRunner()
            let setup = try await options.setup(imageRegistry: reference.registry, runner: curl)
            let config = setup.config
            let runtimes = await RuntimeConfigReader(runtime: config.runtime, runner: curl).readForPulls()
            let prober = RegistryProber(runner: curl)
            var results: [ProbeResult] = []
            // In order, as the runtime tries them: each answer is evidence for the verdict.
            for var target in PullPath.targets(for: reference, config: config, runtimes: runtimes, credentials: setup.credentials) {
                target.proxy = setup.proxy
                results.append(await prober.probe(target))
            }
            var diagnosis = Diagnosis.evaluate(image: reference, path: results)
            diagnosis.discovery = setup.discovery
            if let report {
                let text = DiagnosisReport(diagnosis: diagnosis, hostID: config.host.id, configSource: setup.source,
                                           generatedAt: Date(), secrets: setup.secrets).markdown
                do { try AtomicFile.write(Array(text.utf8), to: report, mode: 0o644) } catch {
                    throw ValidationError("--report \(report): cannot write: \(error)")
                }
            }
            if json {
                try printJSON(diagnosis)
            } else {
                if let d = setup.discovery { print(formatDiscovery(d)) }
                print("image \(diagnosis.image)\n")
                print(formatTable(["#", "ROLE", "ENDPOINT", "CHECK", "CLASS", "EVIDENCE"], diagnosis.steps.enumerated().map { i, s in
                    ["\(i + 1)", s.role, s.endpoint, s.check, s.class, s.detail]
                }))
                print("\nverdict: \(diagnosis.verdict.class)\n  \(diagnosis.verdict.summary)\nnext step: \(diagnosis.verdict.next)")
                if let report { print("report written to \(report)") }
            }
            if !diagnosis.healthy { throw ExitCode.problems }
        }
    }

    struct Health: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say whether the running agent's check cycle still turns (a liveness probe).",
            discussion: "Exit 0 when the last cycle finished within three intervals (at least 90 s), 1 when not, 2 on a configuration error.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let config = try options.load()
            let verdict = LastCycleFile.verdict(last: LastCycleFile(stateDir: config.stateDir).read(), now: Date(), interval: config.interval)
            print((verdict.healthy ? "healthy: " : "unhealthy: ") + verdict.message)
            if !verdict.healthy { throw ExitCode.problems }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put every runtime file regwatch changed back as it was before its first change, and reload the runtimes (for uninstall; stop the agent first).",
            discussion: "Exit 0 restored (or nothing to restore), 1 when a file or a reload failed (its original is kept for another try), 2 on a configuration error.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let config = try options.load()
            let result = RuntimeRestorer(config: config, reloader: ProcessReloader(dockerPidFile: config.runtime.docker?.pidFile)).restore()
            result.lines.forEach { print($0) }
            if result.failed { throw ExitCode.problems }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage this agent's CURVE key.", subcommands: [Generate.self, Rotate.self])

        struct Rotate: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Replace this agent's key: the running agent sends the new public key over its connection authenticated by the old one; the aggregator swaps them and refuses the old key from then on.",
                discussion: "Exit 0 rotated, 1 refused or not done in time (the new key then waits beside the old one), 2 usage or configuration error.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "How long to wait for the running agent, e.g. 30s.") var wait = "30s"

            func validate() throws {
                guard DurationText.parse(wait) != nil else { throw ValidationError("--wait: expected a duration like 30s, got \"\(wait)\"") }
            }

            func run() throws {
                let config = try options.load()
                guard !config.aggregator.insecure, let clientKey = config.aggregator.clientKey else {
                    throw ConfigError(file: options.config, key: "aggregator.clientKey", message: "no CURVE key to rotate (insecure transport)")
                }
                do { _ = try KeyFiles.readCurveKeyPair(clientKey) } catch {
                    throw ConfigError(file: options.config, key: "aggregator.clientKey", message: error.description)
                }
                let next = AgentIdentity.nextKeyPath(clientKey), refused = AgentIdentity.refusedPath(clientKey)
                guard !FileManager.default.fileExists(atPath: next) else {
                    throw ValidationError("\(next): a rotation is already waiting for the running agent")
                }
                unlink(refused)
                let pair = try CurveKeyPair.generate()
                try AgentIdentity.write(pair, to: next)
                print("wrote the next key to \(next); waiting for the running agent")
                let deadline = Date().addingTimeInterval(DurationText.parse(wait)!.seconds)
                while Date() < deadline {
                    if let reason = FileManager.default.contents(atPath: refused) {
                        unlink(refused)
                        StandardError.write("rotation refused: \(String(decoding: reason, as: UTF8.self).trimmed())\n")
                        throw ExitCode.problems
                    }
                    if !FileManager.default.fileExists(atPath: next), (try? KeyFiles.readCurveKeyPair(clientKey))?.publicKey == pair.publicKey {
                        print("rotated: this agent's key is now \(pair.publicKey.z85); the old one is refused")
                        return
                    }
                    usleep(100_000)
                }
                // Never remove the waiting key: the agent may be sending it right now.
                StandardError.write("the running agent did not rotate within \(wait); \(next) waits for it (is regwatch-agent run up and connected?)\n")
                throw ExitCode.problems
            }
        }

        struct Generate: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write DIR/agent.key (0600) and DIR/agent.pub; never overwrites a key.")

            @Option(name: .long, help: "Directory for the key files.")
            var out: String

            func run() throws {
                let written = try AgentKeyGenerator.generate(into: out)
                print("wrote \(written.secretPath) (secret, 0600) and \(written.publicPath)")
                print("public key: \(written.publicKey)")
                print("enroll it on the aggregator: regwatch-aggregator keys accept --host HOST_ID --key \(written.publicPath)")
            }
        }
    }

    struct Failover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Failover on this host: the applied generation, or a signed command applied by hand.",
            subcommands: [Status.self, Apply.self])

        struct Status: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print the applied failover generation and the changes of the last hour.")
            @OptionGroup var options: ConfigOption

            func run() throws {
                let config = try options.load()
                let file = AppliedGenerationFile(stateDir: config.stateDir)
                let generation: UInt64
                do { generation = try file.read() } catch {
                    throw ConfigError(file: config.hostRoot.shown(error.path), key: "stateDir", message: error.reason)
                }
                let changes = ChangeHistoryFile(stateDir: config.stateDir).recent(now: Date())
                print("applied generation \(generation) (\(config.hostRoot.shown(file.path))); \(changes.count) of \(config.failover.maxChangesPerHour) changes used in the last hour")
            }
        }

        struct Apply: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Apply a signed failover command from a file, with every check a command from the aggregator gets.",
                discussion: "FILE holds the command's JSON ({\"payload\": …, \"signature\": …}). Exit 0 applied or already applied, 1 refused or failed, 2 usage or configuration error.")
            @OptionGroup var options: ConfigOption
            @Option(name: .long, help: "File with the signed command.") var command: String

            func run() async throws {
                let config = try options.load()
                let credentials = try AgentCredentials.load(config, configFile: options.config)
                guard let data = FileManager.default.contents(atPath: command) else {
                    throw ValidationError("\(command): cannot read the command file")
                }
                let signed: SignedFailoverCommand
                do { signed = try JSONCoding.decoder().decode(SignedFailoverCommand.self, from: data) } catch {
                    throw ValidationError("\(command): not a signed failover command: \(WireCodec.describe(error))")
                }
                let service = try FailoverCommandService.make(config: config, verifier: credentials.commandVerifier, client: nil, logger: Logger(label: "regwatch.agent"))
                let ack = await service.handle(signed, now: Date())
                print("generation \(ack.generation): \(ack.outcome.rawValue)\(ack.reason.isEmpty ? "" : ": \(ack.reason)") (applied generation \(ack.appliedGeneration))")
                if ack.outcome != .applied && ack.outcome != .ignored { throw ExitCode.problems }
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the config file, the key files it names and the aggregator endpoint; exit 2 on the first problem.")

        @OptionGroup var options: ConfigOption

        func run() throws {
            let config = try options.load()
            var enrollment = ""
            if let token = config.aggregator.bootstrapToken, !config.aggregator.insecure {
                do { _ = try AgentIdentity.readToken(token) } catch {
                    throw ConfigError(file: options.config, key: "aggregator.bootstrapToken", message: error.description)
                }
                enrollment = ", joins with a bootstrap token"
            }
            let keyToMake = config.aggregator.bootstrapToken != nil && !FileManager.default.fileExists(atPath: config.aggregator.clientKey ?? "")
            let verifier: CommandVerifier?
            if keyToMake {
                // The key is made at first start: check the other key files only.
                var c = config
                c.aggregator.insecure = true
                verifier = try AgentCredentials.load(c, configFile: options.config).commandVerifier
                _ = try AgentCredentials.serverKey(config, configFile: options.config)
                enrollment += "; its key is made at first start in \(config.aggregator.clientKey ?? "")"
            } else {
                verifier = try AgentCredentials.load(config, configFile: options.config).commandVerifier
            }
            // The credentials files `run` loads at start: a missing one stops it, so it stops validate too.
            _ = try CheckCycle.loadCredentials(config)
            for (i, endpoint) in config.aggregator.endpoints.enumerated() {
                let key = config.aggregator.endpoints.count == 1 ? "aggregator.endpoint" : "aggregator.endpoints[\(i)]"
                try EndpointCheck.validateConnectEndpoint(endpoint, configFile: options.config, key: key)
            }
            let mode = config.aggregator.insecure ? "INSECURE (no CURVE)" : "CURVE"
            print("\(options.config): ok (host \(config.host.id), aggregator \(config.aggregator.endpoints.joined(separator: ", ")) over \(mode), \(config.registries.count) registries, signing key \(verifier == nil ? "absent" : "pinned")\(enrollment))")
        }
    }
}

await CLIRunner.main(AgentCommand.self)
