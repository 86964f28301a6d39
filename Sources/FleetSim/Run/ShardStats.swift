/// What one shard has seen, read by the runner under the shard's lock. Times are seconds since the run's
/// start (monotonic); `.nan` where nothing happened yet.
struct ShardStats: Sendable {
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
    /// Per agent: when it first accepted a failover generation, and which.
    var acceptedAt: [Double]
    var acceptedGeneration: [UInt64]
    /// Acknowledged events: global agent index and seq (kept only when the run lists them).
    var ackedEvents: [(agent: Int32, seq: UInt64)] = []
    var unackedNow = 0

    init(count: Int) {
        epochHandshakeAt = Array(repeating: .nan, count: count)
        epochReportAt = Array(repeating: .nan, count: count)
        acceptedAt = Array(repeating: .nan, count: count)
        acceptedGeneration = Array(repeating: 0, count: count)
    }
}
