import FoundationEssentials
import RegwatchShared

/// What one `regwatch-fleetsim` run does: whom it talks to, how many agents it plays, and the script.
public struct SimSettings: Sendable {
    public enum Scenario: String, Sendable, CaseIterable {
        /// Agents report every interval; the run measures the aggregator at rest.
        case steady
        /// Reports show a healthy first mirror, then that mirror failing (``Fault``s); the agents apply
        /// what the aggregator sends, and the run times detection and the rollout.
        case failover
        /// Once every agent reports, the aggregator is restarted through ``restartCommand``; the run
        /// times how the fleet comes back.
        case reconnect
        /// The aggregator is killed and restarted ``kills`` times while agents send pull events; the
        /// run lists every event the aggregator acknowledged, for a check against its database.
        case crash
    }

    public var endpoint: String
    public var serverKey: CurvePublicKey
    /// The aggregator's command-signing key; failover commands are verified against it like the agent does.
    public var signingKeyFile: String
    public var token: String
    public var agents: Int
    public var scenario: Scenario
    public var interval: Duration
    public var duration: Duration
    public var restartCommand: String?
    /// The aggregator's HTTP listener (`http://127.0.0.1:PORT`): outages and failover progress.
    public var api: String?
    /// A file holding the aggregator's PID (re-read after a restart): its CPU time and memory.
    public var aggregatorPIDFile: String?
    /// Emulated agents' keys and enrollments, kept between runs so a fleet enrolls once.
    public var stateDir: String
    public var zones: Int
    public var egresses: Int
    /// Host ids are `PREFIX-00001` …; two simulators against one aggregator need distinct prefixes.
    public var hostPrefix: String
    /// Threads that drive the sockets.
    public var threads: Int
    /// Most agents one process plays; nil: as many as its open-files limit allows. More are run by workers.
    public var agentsPerProcess: Int?
    public var faults: [Fault]
    /// When the faults begin, from the moment every agent is connected.
    public var faultAfter: Duration
    /// Pull events each agent emits per interval (the `crash` scenario needs some).
    public var eventsPerInterval: Int
    /// `crash`: how many times the aggregator is killed, and the pause between kills (drawn uniformly).
    public var kills: Int
    public var killEvery: ClosedRange<Double>
    /// `crash`: the file the acknowledged events are written to (`host seq` per line).
    public var ackedEventsFile: String?

    public init(
        endpoint: String, serverKey: CurvePublicKey, signingKeyFile: String, token: String, agents: Int,
        scenario: Scenario, interval: Duration = .seconds(30), duration: Duration = .seconds(300),
        restartCommand: String? = nil, api: String? = nil, aggregatorPIDFile: String? = nil, stateDir: String,
        zones: Int = 4, egresses: Int = 40, hostPrefix: String = "sim", threads: Int = 2, agentsPerProcess: Int? = nil, faults: [Fault] = [],
        faultAfter: Duration = .seconds(60), eventsPerInterval: Int = 0, kills: Int = 0,
        killEvery: ClosedRange<Double> = 0.5...3, ackedEventsFile: String? = nil
    ) {
        self.endpoint = endpoint
        self.serverKey = serverKey
        self.signingKeyFile = signingKeyFile
        self.token = token
        self.agents = agents
        self.scenario = scenario
        self.interval = interval
        self.duration = duration
        self.restartCommand = restartCommand
        self.api = api
        self.aggregatorPIDFile = aggregatorPIDFile
        self.stateDir = stateDir
        self.zones = zones
        self.egresses = egresses
        self.hostPrefix = hostPrefix
        self.threads = threads
        self.agentsPerProcess = agentsPerProcess
        self.faults = faults
        self.faultAfter = faultAfter
        self.eventsPerInterval = eventsPerInterval
        self.kills = kills
        self.killEvery = killEvery
        self.ackedEventsFile = ackedEventsFile
    }
}
