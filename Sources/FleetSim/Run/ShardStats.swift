/// What one shard has seen, read by the runner under the shard's lock. Times are seconds since the run's
/// start (monotonic); `.nan` where nothing happened yet.
struct ShardStats: Sendable, Codable {
    var connected = 0
    var enrolledNow = 0
    var joinedThisRun = 0
    var joinsSent = 0
    var joinRefusals = 0
    var handshakes = 0
    var authFailures = 0
    var disconnects = 0
    var reportsSent = 0
    var reportsDropped = 0
    var eventsSent = 0
    var eventsResent = 0
    var eventsAcked = 0
    var commandsReceived = 0
    var acksByOutcome: [String: Int] = [:]
    var rejectReasons: [String: Int] = [:]
    /// Per agent (local index): first handshake and first report after the current epoch began.
    var epochHandshakeAt: [Double]
    var epochReportAt: [Double]
    /// Per agent: when it first accepted a failover generation.
    var acceptedAt: [Double]
    /// Acknowledged events: global agent index and seq (kept only when the run lists them).
    var ackedEvents: [AckedEvent] = []
    /// Global indices of the agents enrolled at the end (filled once, when the shard stops).
    var enrolledAgents: [Int32] = []
    var unackedNow = 0

    init(count: Int) {
        epochHandshakeAt = Array(repeating: .nan, count: count)
        epochReportAt = Array(repeating: .nan, count: count)
        acceptedAt = Array(repeating: .nan, count: count)
    }
}

struct AckedEvent: Sendable, Codable {
    var agent: Int32
    var seq: UInt64
}

extension ShardStats {
    /// Adds another shard's figures; per-agent arrays are concatenated (only counts and extremes are read).
    mutating func add(_ s: ShardStats) {
        connected += s.connected
        enrolledNow += s.enrolledNow
        joinedThisRun += s.joinedThisRun
        joinsSent += s.joinsSent
        joinRefusals += s.joinRefusals
        handshakes += s.handshakes
        authFailures += s.authFailures
        disconnects += s.disconnects
        reportsSent += s.reportsSent
        reportsDropped += s.reportsDropped
        eventsSent += s.eventsSent
        eventsResent += s.eventsResent
        eventsAcked += s.eventsAcked
        unackedNow += s.unackedNow
        commandsReceived += s.commandsReceived
        acksByOutcome.merge(s.acksByOutcome, uniquingKeysWith: +)
        rejectReasons.merge(s.rejectReasons, uniquingKeysWith: +)
        epochHandshakeAt += s.epochHandshakeAt
        epochReportAt += s.epochReportAt
        acceptedAt += s.acceptedAt
        ackedEvents += s.ackedEvents
        enrolledAgents += s.enrolledAgents
    }
}
