import ArgumentParser
import FoundationEssentials
import RegwatchAgent
import RegwatchCLI
import RegwatchFleetSim
import RegwatchShared

/// Emulates a fleet of agents against a running `regwatch-aggregator serve` and prints its figures as one
/// JSON object on the last line (docs/benchmarks.md).
struct FleetSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regwatch-fleetsim",
        abstract: "Emulates N regwatch agents over real CURVE connections and measures the aggregator.",
        discussion: "Progress goes to stderr; the last line on stdout is one JSON object with the figures.",
        version: RegwatchVersion.current
    )

    @Option(help: "The aggregator's ZeroMQ endpoint, e.g. tcp://127.0.0.1:7450.") var endpoint: String
    @Option(name: .customLong("server-key"), help: "The aggregator's CURVE public key file (server.pub).") var serverKey: String
    @Option(name: .customLong("signing-key"), help: "The aggregator's command-signing public key file (signing.pub).") var signingKey: String
    @Option(name: .customLong("token-file"), help: "A bootstrap token file: agents not enrolled yet join with it.") var tokenFile: String
    @Option(help: "Number of emulated agents.") var agents: Int
    @Option(help: "steady, failover, reconnect or crash.") var scenario: String
    @Option(help: "Report interval (30s, 1m …).") var interval = "30s"
    @Option(help: "steady: how long to measure; failover and reconnect: the deadline after the fault or restart.") var duration = "5m"
    @Option(name: .customLong("restart-command"), help: "reconnect/crash: a shell command that kills the aggregator and starts it again.") var restartCommand: String?
    @Option(help: "The aggregator's HTTP API, http://ADDRESS:PORT (failover: outages and rollout).") var api: String?
    @Option(name: .customLong("aggregator-pidfile"), help: "A file holding the aggregator's PID, re-read after restarts: its CPU and memory.") var aggregatorPIDFile: String?
    @Option(name: .customLong("state-dir"), help: "Where the emulated agents' keys and enrollments are kept between runs.") var stateDir = "fleetsim-state"
    @Option(help: "Zones the agents are spread over.") var zones = 4
    @Option(help: "Egress addresses (NATs) the agents are spread over.") var egresses = 40
    @Option(name: .customLong("host-prefix"), help: "Host ids are PREFIX-00001 …") var hostPrefix = "sim"
    @Option(help: "Threads driving the sockets.") var threads = 2
    @Option(name: .customLong("fault"), help: "mirror-down[:share=X|zone=Z], quota:egress=E, silent[:share=X] (repeatable; failover default: mirror-down).") var faults: [String] = []
    @Option(name: .customLong("fault-after"), help: "When the faults begin, after every agent is connected.") var faultAfter = "60s"
    @Option(help: "Pull events per agent per interval.") var events = 0
    @Option(help: "crash: how many times the restart command is run.") var kills = 0
    @Option(name: .customLong("kill-every"), help: "crash: pause between kills, MIN-MAX seconds.") var killEvery = "0.5-3"
    @Option(name: .customLong("acked-events"), help: "crash: file to write the acknowledged events to (host seq per line).") var ackedEvents: String?

    @Option(name: .customLong("agents-per-process"), help: "Most agents one process plays (default: what its open-files limit allows); more run in worker processes.") var agentsPerProcess: Int?
    @Option(help: .hidden) var worker: String?

    func run() async throws {
        func duration(_ option: String, _ text: String) throws -> Duration {
            guard let d = DurationText.parse(text), d > .zero else { throw SimError.badArgument("--\(option)", "\"\(text)\" is not a duration like 30s, 5m or 1h") }
            return d
        }
        guard let scenario = SimSettings.Scenario(rawValue: scenario) else {
            throw SimError.badArgument("--scenario", "\"\(self.scenario)\" is not one of \(SimSettings.Scenario.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let bounds = killEvery.split(separator: "-").compactMap { Double($0) }
        guard bounds.count == 2, bounds[0] >= 0, bounds[0] <= bounds[1] else { throw SimError.badArgument("--kill-every", "\"\(killEvery)\" must be MIN-MAX seconds") }
        let server: CurvePublicKey
        do { server = try KeyFiles.readCurvePublicKey(serverKey) } catch { throw SimError.badArgument("--server-key", error.description) }
        let token: String
        do { token = try AgentIdentity.readToken(tokenFile) } catch { throw SimError.badArgument("--token-file", error.description) }
        var parsedFaults = try faults.map { try Fault(parsing: $0) }
        if scenario == .failover, parsedFaults.isEmpty { parsedFaults = [Fault(kind: .mirrorDown, scope: .all)] }
        let settings = SimSettings(
            endpoint: endpoint, serverKey: server, signingKeyFile: signingKey, token: token, agents: agents, scenario: scenario,
            interval: try duration("interval", interval), duration: try duration("duration", self.duration), restartCommand: restartCommand,
            api: api, aggregatorPIDFile: aggregatorPIDFile, stateDir: stateDir, zones: zones, egresses: egresses, hostPrefix: hostPrefix,
            threads: threads, agentsPerProcess: agentsPerProcess, faults: parsedFaults, faultAfter: try duration("fault-after", faultAfter), eventsPerInterval: events,
            kills: kills, killEvery: bounds[0]...bounds[1], ackedEventsFile: ackedEvents)
        if let worker {
            // FIRST:COUNT:START (monotonic ms): a worker process started by a coordinator (WorkerLink).
            let f = worker.split(separator: ":").compactMap { Int64($0) }
            guard f.count == 3 else { throw SimError.badArgument("--worker", "\"\(worker)\" is not FIRST:COUNT:START") }
            try await FleetWorker.run(settings: settings, first: Int(f[0]), count: Int(f[1]), startMs: f[2])
            return
        }
        let summary = try await FleetSimulator(settings: settings) { StandardError.write("regwatch-fleetsim: \($0)\n") }.run()
        print(String(decoding: try JSONCoding.encoder().encode(summary), as: UTF8.self))
    }
}

await CLIRunner.main(FleetSimCommand.self)
