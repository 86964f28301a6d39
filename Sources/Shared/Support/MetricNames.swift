/// Prometheus metric names. The `regwatch_*` names in the first block are contract (docs/metrics.md);
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

    // Enrollment (extensions)
    /// Join decisions, label `result` (accepted, already_enrolled, pending, token_*, key_*, pending_full, rate_limited, busy, malformed).
    public static let enrollmentJoinsTotal = "regwatch_enrollment_joins_total"
    /// Joins waiting in the pending list.
    public static let enrollmentPending = "regwatch_enrollment_pending"
    /// Messages other than `join` from joining peers, label `type` (or `malformed`).
    public static let enrollmentJoiningDroppedTotal = "regwatch_enrollment_joining_dropped_total"
    /// Open connections closed because their key was revoked, replaced or rejected.
    public static let enrollmentDisconnectsTotal = "regwatch_enrollment_disconnects_total"
    /// Key rotations, label `result` = `accepted` | `refused`.
    public static let enrollmentRotationsTotal = "regwatch_enrollment_rotations_total"

    // Operator surface (extensions): what the alert rules and dashboards need beyond the contract.
    /// One series per active outage, labels `kind`, `scope` (``OutageKey`` fields), `class`; value = affected hosts.
    public static let outage = "regwatch_outage"
    /// Hosts per status, label `status` = `ok` | `problems` | `stale` | `disconnected`.
    public static let hosts = "regwatch_hosts"
    /// Earliest TLS certificate expiry (Unix seconds) reported by non-stale hosts, label `endpoint`.
    public static let certificateExpiry = "regwatch_certificate_expiry_timestamp_seconds"
    /// Pull events agents dropped from a full spool, from the reports' `spool.dropped`.
    public static let agentEventsDroppedTotal = "regwatch_agent_events_dropped_total"
    /// Failover generations per state, label `state`.
    public static let failoverPlans = "regwatch_failover_plans"
    /// Mirror maps blocked by a halted generation until a thaw.
    public static let failoverBlocked = "regwatch_failover_blocked"
    /// Generations rolled back after a failed canary.
    public static let failoverRollbacksTotal = "regwatch_failover_rollbacks_total"
    /// 1 while failover is frozen.
    public static let failoverFrozen = "regwatch_failover_frozen"
    /// When the current freeze began (Unix seconds), 0 when not frozen.
    public static let failoverFrozenSince = "regwatch_failover_frozen_since_timestamp_seconds"
    /// 1 on the aggregator that holds the leader lock (runs correlation and failover planning), else 0.
    public static let leader = "regwatch_leader"
    /// The leadership term this aggregator last led or saw.
    public static let leaderEpoch = "regwatch_leader_epoch"

    /// `# HELP` text per metric. swift-metrics carries no help, so the exposition adds it (``withHelp(_:)``).
    public static let help: [String: String] = [
        probeSuccess: "Share of reporting, non-stale hosts whose latest probe of the endpoint succeeded (0-1).",
        probeDuration: "Probe phase durations reported by agents (resolve, connect, tls, processing, total).",
        rateLimitRemaining: "Lowest remaining registry pull quota (ratelimit-remaining) among the hosts of an egress.",
        pullsTotal: "Image pulls seen by agents, by result and error class; each (host, seq) counted once.",
        authFailuresTotal: "Registry authentication failures in probes and pulls.",
        outageActive: "Active outages by kind.",
        failoverGeneration: "Current failover generation.",
        agentsConnected: "Agents with an open ZeroMQ connection.",
        reportsIngestedTotal: "Agent reports stored in the database.",
        reportsDroppedTotal: "Agent reports not stored: rejected, outdated or lost to a failed commit.",
        wireRejectedTotal: "Wire messages rejected, by reason.",
        zapDecisionsTotal: "CURVE/ZAP authentication decisions, by result (accepted, joining, rejected).",
        enrollmentJoinsTotal: "Join requests from keys not enrolled yet, by decision.",
        enrollmentPending: "Joins waiting for an operator in the pending list.",
        enrollmentJoiningDroppedTotal: "Messages other than join from joining peers, dropped, by type.",
        enrollmentDisconnectsTotal: "Open agent connections closed because their key was revoked, replaced or rejected.",
        enrollmentRotationsTotal: "Agent key rotations, by result.",
        outage: "Active outages, one series each, by kind, scope and error class; the value is the number of affected hosts.",
        hosts: "Hosts the aggregator knows, by status (ok, problems, stale, disconnected).",
        certificateExpiry: "Earliest TLS certificate expiry of the endpoint reported by non-stale hosts, in Unix seconds.",
        agentEventsDroppedTotal: "Pull events agents dropped because their spool was full.",
        failoverPlans: "Failover generations by state.",
        failoverBlocked: "Mirror maps blocked by a halted failover generation, waiting for a thaw.",
        failoverRollbacksTotal: "Failover generations rolled back after a failed canary.",
        failoverFrozen: "1 while failover is frozen by an operator, else 0.",
        failoverFrozenSince: "When the current failover freeze began, in Unix seconds; 0 when not frozen.",
        leader: "1 on the aggregator that leads (holds the leader lock: runs correlation and failover planning), 0 on the others.",
        leaderEpoch: "The leadership term this aggregator leads, or the last one it saw start; every failover command carries it.",
    ]

    /// Prometheus text with a `# HELP` line before each `# TYPE` line of a known metric.
    public static func withHelp(_ exposition: String) -> String {
        var out = ""
        out.reserveCapacity(exposition.utf8.count + 2048)
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if let text = help[String(name)] { out += "# HELP \(name) \(text)\n" }
            }
            out += line
            out += "\n"
        }
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }
}
