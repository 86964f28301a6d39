/// The one JSON object `regwatch-fleetsim` prints as its last line. Times are seconds; a figure that the
/// scenario does not measure, or that never happened (not every agent acked before the deadline), is `null`.
public struct SimSummary: Encodable, Sendable {
    public var scenario = ""
    public var agents = 0
    /// Agents connected (as their host id, CURVE handshake done) at the end.
    public var connected = 0
    public var enrolledThisRun = 0
    /// From the start until every agent was connected as its host id.
    public var connectSeconds: Double?
    public var reportsSent = 0
    /// Reports are idempotent state and are not acknowledged by the protocol: always null.
    public var reportsAcked: Int?
    public var reportsDropped = 0
    public var eventsSent = 0
    public var eventsResent = 0
    public var eventsAcked = 0
    public var eventsUnacked = 0
    public var joinsSent = 0
    public var joinRefusals = 0
    public var authFailures = 0
    public var disconnects = 0
    public var commandsReceived = 0
    public var acks: [String: Int] = [:]
    public var rejectReasons: [String: Int] = [:]
    // failover
    public var detectSeconds: Double?
    public var canaries: Int?
    public var fullStageAgents: Int?
    public var fullStageAckedWithin10s: Double?
    public var allAckedSeconds: Double?
    public var rolloutSeconds: Double?
    public var finalRolloutState: String?
    // reconnect
    public var restartCommandSeconds: Double?
    public var reconnectSpreadSeconds: Double?
    public var reconnectPeakPerSecond: Int?
    public var allReconnectedSeconds: Double?
    public var reconnectHandshakeCPUSeconds: Double?
    // crash
    public var kills: Int?
    // the aggregator (from /proc; the process running at the end)
    public var cpuSeconds: Double?
    /// Its CPU over the measured window, as a share of one core.
    public var cpuShare: Double?
    public var measuredSeconds: Double?
    public var rssBytes: Int?
    public var peakRSSBytes: Int?
    public var rssPerConnectionBytes: Int?
    /// The simulator's own CPU (user + system), for the cost of the emulation itself.
    public var simCPUSeconds = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case scenario, agents, connected, enrolledThisRun, connectSeconds, reportsSent, reportsAcked, reportsDropped, eventsSent,
             eventsResent, eventsAcked, eventsUnacked, joinsSent, joinRefusals, authFailures, disconnects, commandsReceived, acks,
             rejectReasons, detectSeconds, canaries, fullStageAgents, fullStageAckedWithin10s, allAckedSeconds, rolloutSeconds,
             finalRolloutState, restartCommandSeconds, reconnectSpreadSeconds, reconnectPeakPerSecond, allReconnectedSeconds,
             reconnectHandshakeCPUSeconds, kills, cpuSeconds, cpuShare, measuredSeconds, rssBytes, peakRSSBytes,
             rssPerConnectionBytes, simCPUSeconds
    }

    /// Every key is always present; absent figures are `null` (the synthesized encoder would leave them out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(agents, forKey: .agents)
        try c.encode(connected, forKey: .connected)
        try c.encode(enrolledThisRun, forKey: .enrolledThisRun)
        try c.encode(connectSeconds, forKey: .connectSeconds)
        try c.encode(reportsSent, forKey: .reportsSent)
        try c.encode(reportsAcked, forKey: .reportsAcked)
        try c.encode(reportsDropped, forKey: .reportsDropped)
        try c.encode(eventsSent, forKey: .eventsSent)
        try c.encode(eventsResent, forKey: .eventsResent)
        try c.encode(eventsAcked, forKey: .eventsAcked)
        try c.encode(eventsUnacked, forKey: .eventsUnacked)
        try c.encode(joinsSent, forKey: .joinsSent)
        try c.encode(joinRefusals, forKey: .joinRefusals)
        try c.encode(authFailures, forKey: .authFailures)
        try c.encode(disconnects, forKey: .disconnects)
        try c.encode(commandsReceived, forKey: .commandsReceived)
        try c.encode(acks, forKey: .acks)
        try c.encode(rejectReasons, forKey: .rejectReasons)
        try c.encode(detectSeconds, forKey: .detectSeconds)
        try c.encode(canaries, forKey: .canaries)
        try c.encode(fullStageAgents, forKey: .fullStageAgents)
        try c.encode(fullStageAckedWithin10s, forKey: .fullStageAckedWithin10s)
        try c.encode(allAckedSeconds, forKey: .allAckedSeconds)
        try c.encode(rolloutSeconds, forKey: .rolloutSeconds)
        try c.encode(finalRolloutState, forKey: .finalRolloutState)
        try c.encode(restartCommandSeconds, forKey: .restartCommandSeconds)
        try c.encode(reconnectSpreadSeconds, forKey: .reconnectSpreadSeconds)
        try c.encode(reconnectPeakPerSecond, forKey: .reconnectPeakPerSecond)
        try c.encode(allReconnectedSeconds, forKey: .allReconnectedSeconds)
        try c.encode(reconnectHandshakeCPUSeconds, forKey: .reconnectHandshakeCPUSeconds)
        try c.encode(kills, forKey: .kills)
        try c.encode(cpuSeconds, forKey: .cpuSeconds)
        try c.encode(cpuShare, forKey: .cpuShare)
        try c.encode(measuredSeconds, forKey: .measuredSeconds)
        try c.encode(rssBytes, forKey: .rssBytes)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try c.encode(rssPerConnectionBytes, forKey: .rssPerConnectionBytes)
        try c.encode(simCPUSeconds, forKey: .simCPUSeconds)
    }
}
