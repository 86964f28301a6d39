/// Reads the optional `transport:` section both config files share.
public enum TransportLimitsConfig {
    /// - Parameter agent: the agent's file takes the heartbeat keys; the aggregator's refuses them, since
    ///   its side sends no heartbeats (``TransportLimits/heartbeatIntervalMs`` says why).
    public static func parse(_ node: ConfigNode, agent: Bool) throws(ConfigError) -> TransportLimits {
        var l = TransportLimits()
        if !agent {
            for key in ["heartbeatInterval", "heartbeatTimeout"] where node[key].exists {
                throw node[key].error("agents only: the aggregator sends no heartbeats (agents ping it, and TCP keepalive finds dead hosts); remove it")
            }
        }
        l.maxMessageSize = Int64(try node["maxMessageSize"].int(default: Int(l.maxMessageSize), range: 1024...(256 << 20)))
        l.sendHighWaterMark = Int32(try node["sendHighWaterMark"].int(default: Int(l.sendHighWaterMark), range: 1...1_000_000))
        l.receiveHighWaterMark = Int32(try node["receiveHighWaterMark"].int(default: Int(l.receiveHighWaterMark), range: 1...1_000_000))
        l.heartbeatIntervalMs = Int32(try ms(node["heartbeatInterval"], l.heartbeatIntervalMs))
        l.heartbeatTimeoutMs = Int32(try ms(node["heartbeatTimeout"], l.heartbeatTimeoutMs))
        l.handshakeTimeoutMs = Int32(try ms(node["handshakeTimeout"], l.handshakeTimeoutMs))
        l.outboxMessages = try node["outboxMessages"].int(default: l.outboxMessages, range: 1...10_000_000)
        l.outboxBytes = try node["outboxBytes"].int(default: l.outboxBytes, range: 1024...(1 << 34))
        l.acceptBacklog = Int32(try node["acceptBacklog"].int(default: Int(l.acceptBacklog), range: 1...65535))
        try node.rejectUnknownKeys()
        return l
    }

    private static func ms(_ node: ConfigNode, _ current: Int32) throws(ConfigError) -> Int {
        let d = try node.duration(default: .milliseconds(Int64(current)))
        let v = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        guard v >= 100, v <= 600_000 else { throw node.error("must be between 100ms and 10m") }
        return Int(v)
    }
}
