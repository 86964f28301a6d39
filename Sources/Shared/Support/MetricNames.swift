/// Prometheus metric names. The `regwatch_*` names in the first block are contract (DESIGN.md);
/// libraries refer to these constants, never to string literals.
public enum MetricNames {
    // Contract
    public static let probeSuccess = "regwatch_probe_success"
    public static let probeDuration = "regwatch_probe_duration_seconds"
    public static let rateLimitRemaining = "regwatch_ratelimit_remaining"
    public static let pullsTotal = "regwatch_pulls_total"
    public static let authFailuresTotal = "regwatch_auth_failures_total"
    public static let outageActive = "regwatch_outage_active"
    public static let failoverGeneration = "regwatch_failover_generation"
    public static let agentsConnected = "regwatch_agents_connected"
    public static let reportsIngestedTotal = "regwatch_reports_ingested_total"
    public static let reportsDroppedTotal = "regwatch_reports_dropped_total"

    // Transport and wire (extensions)
    /// Frames rejected by the dispatcher, label `reason` = the ``WireError`` code or `wire.sender_mismatch`.
    public static let wireRejectedTotal = "regwatch_wire_rejected_total"
    /// ZAP decisions, label `result` = `accepted` | `rejected`.
    public static let zapDecisionsTotal = "regwatch_zap_decisions_total"
}
