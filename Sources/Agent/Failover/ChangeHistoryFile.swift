import FoundationEssentials
import RegwatchShared

/// When this agent applied failover generations in the last hour, in `stateDir/failover-changes`
/// (unix seconds, one per line): the agent's own rate limit survives restarts, so a restart loop
/// cannot reset it. A missing or unreadable file counts as no recent change: the limit is a brake
/// against flapping, the generation file is what guards against replays.
public struct ChangeHistoryFile: Sendable {
    public let path: String

    public init(stateDir: String) {
        path = stateDir + "/failover-changes"
    }

    /// Changes within the hour before `now`.
    public func recent(now: Date) -> [Date] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .compactMap { Double($0).map { Date(timeIntervalSince1970: $0) } }
            .filter { now.timeIntervalSince($0) < 3600 && $0.timeIntervalSince(now) < 300 }
    }

    /// Adds `now`, dropping entries older than an hour.
    public func record(_ now: Date) throws(AtomicFile.WriteError) {
        let kept = recent(now: now) + [now]
        try AtomicFile.write(Array(kept.map { "\(DecimalText.fixed($0.timeIntervalSince1970, places: 3))\n" }.joined().utf8), to: path, mode: 0o600)
    }
}
