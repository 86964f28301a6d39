import Foundation

/// Turns the candidates of successive windows into outages that open and close, with Prometheus `for` /
/// `keep_firing_for` semantics, so that noise neither opens outages nor makes them flap:
/// - a candidate opens only after it has been present for `openAfter - 1` windows of time, in every
///   evaluation since it was first seen (one bad window is not an outage; an absence resets it). Its
///   start is when its evidence became sufficient (``OutageCandidate/observedAt``) or the evaluation that
///   first saw it, never before the previous evaluation (when it was absent). Evaluated once per window
///   that is `openAfter` consecutive windows; ``nextDecision``
///   says when to evaluate so an outage opens the moment it has held long enough;
/// - an open outage closes only after it has been absent for `recoveryHold`; if it comes back during the
///   hold, the hold resets and it stays the same outage. Input flapping every other window therefore
///   yields at most one outage, open until the flapping has stopped for a whole hold.
///
/// A value type with no clock and no I/O: the caller passes the rows and the time, persists `active`,
/// and can rebuild the engine from it after a restart (`init(settings:active:)`). Only the
/// pending candidates (at most `openAfter - 1` windows of history) are lost in a restart.
public struct CorrelationEngine: Sendable, Equatable {
    /// A candidate on its way to opening.
    struct Pending: Sendable, Equatable {
        var streak: Int
        var since: Date
    }

    public let settings: CorrelationSettings
    /// Open outages by key.
    public private(set) var active: [OutageKey: ActiveOutage]
    /// Candidates present in the last evaluation that have not opened yet.
    private(set) var pending: [OutageKey: Pending] = [:]
    /// The previous evaluation: a new candidate is never dated before it (it was absent then).
    private(set) var lastEvaluation: Date?

    /// An engine resuming `active` outages (from the database after a restart), or a fresh one.
    public init(settings: CorrelationSettings, active: [ActiveOutage] = []) {
        self.settings = settings
        self.active = Dictionary(active.map { ($0.key, $0) }, uniquingKeysWith: { a, b in a.startedAt <= b.startedAt ? a : b })
    }

    /// An engine resuming another engine's `active` outages.
    public init(settings: CorrelationSettings, active: [OutageKey: ActiveOutage]) {
        self.init(settings: settings, active: Array(active.values))
    }

    /// Keys of candidates counted toward opening, with their streak lengths.
    public var pendingStreaks: [OutageKey: Int] { pending.mapValues(\.streak) }

    /// How long a candidate must hold before it opens.
    var holdBeforeOpen: TimeInterval { Double(max(settings.openAfter, 1) - 1) * settings.windowSeconds }

    /// Timers fire a little early or late and reports are jittered: a candidate within this margin of
    /// its hold counts as having held.
    var holdTolerance: TimeInterval { settings.windowSeconds / 20 }

    /// When a pending candidate will have held long enough to open (nil: none pending). The caller
    /// evaluates then instead of waiting for the next window.
    public var nextDecision: Date? {
        pending.values.map { $0.since.addingTimeInterval(holdBeforeOpen - holdTolerance) }.min()
    }

    /// Detects the candidates in `rows` and advances the state to `now`.
    public mutating func evaluate(rows: [LatestStateRow], now: Date) -> [OutageTransition] {
        evaluate(candidates: OutageDetector.detect(rows: rows, settings: settings), now: now)
    }

    /// Advances the state to `now` given this window's candidates (one per key; later duplicates are
    /// ignored). Transitions come out in key order: opens and updates, then closes.
    public mutating func evaluate(candidates: [OutageCandidate], now: Date) -> [OutageTransition] {
        var present: [OutageKey: OutageCandidate] = [:]
        for c in candidates where present[c.key] == nil { present[c.key] = c }

        var transitions: [OutageTransition] = []
        var nextPending: [OutageKey: Pending] = [:]
        for key in present.keys.sorted() {
            let candidate = present[key]!
            if var outage = active[key] {
                let changed = candidate.differsMaterially(from: outage.candidate)
                outage.candidate = candidate
                outage.lastSeenAt = now
                outage.absentSince = nil
                active[key] = outage
                if changed { transitions.append(.updated(candidate, at: now)) }
                continue
            }
            let observed = max(min(now, candidate.observedAt ?? now), lastEvaluation ?? .distantPast)
            var streak = pending[key] ?? Pending(streak: 0, since: observed)
            streak.streak += 1
            if now.timeIntervalSince(streak.since) >= holdBeforeOpen - holdTolerance {
                active[key] = ActiveOutage(candidate: candidate, startedAt: streak.since, openedAt: now, lastSeenAt: now)
                transitions.append(.opened(candidate, at: streak.since))
            } else {
                nextPending[key] = streak
            }
        }
        pending = nextPending
        lastEvaluation = now

        let hold = settings.recoveryHoldSeconds
        for key in active.keys.sorted() where present[key] == nil {
            var outage = active[key]!
            let since = outage.absentSince ?? now
            if now.timeIntervalSince(since) >= hold {
                active[key] = nil
                transitions.append(.closed(key, at: since))
            } else {
                outage.absentSince = since
                active[key] = outage
            }
        }
        return transitions
    }
}
