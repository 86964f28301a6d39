import FoundationEssentials
import RegwatchShared

/// When the last check cycle finished, in `stateDir/last-cycle`: what `regwatch-agent health` (a
/// DaemonSet's liveness probe) reads. A cycle loop that stopped turning, whatever the reason, goes stale.
public struct LastCycleFile: Sendable {
    public let path: String

    public init(stateDir: String) {
        path = stateDir + "/last-cycle"
    }

    public func write(_ date: Date) {
        // Best effort: a full disk shows as a stale file, which is what the probe should then say.
        try? AtomicFile.write(Array("\(RFC3339.format(date))\n".utf8), to: path, mode: 0o644)
    }

    /// nil when absent or unreadable.
    public func read() -> Date? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return RFC3339.parse(String(decoding: data, as: UTF8.self).trimmed())
    }

    /// The verdict of `health`: the last cycle must have finished within three intervals (at least 90 s,
    /// the first cycle waits up to one interval plus its probes' timeouts).
    public static func verdict(last: Date?, now: Date, interval: Duration) -> (healthy: Bool, message: String) {
        let limit = max(3 * interval.seconds, 90)
        guard let last else { return (false, "no check cycle has finished yet") }
        let age = now.timeIntervalSince(last)
        let text = "last check cycle finished \(Int(age.rounded())) s ago"
        return age <= limit ? (true, text) : (false, text + ", more than \(Int(limit)) s (3 intervals): the agent is stuck")
    }
}
