import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

/// The engine across windows, on a manual clock: `for` / `keep_firing_for` semantics, flapping, restarts.
@Suite("Correlation engine")
struct CorrelationEngineTests {
    typealias F = CorrelationFixture

    static let window: TimeInterval = 30
    static func at(_ n: Int) -> Date { F.t0.addingTimeInterval(Double(n) * window) }

    static let mirrorDown = OutageCandidate(
        key: F.endpointDown(F.mirrorA), errorClass: .tcpTimeout, affectedHosts: 4, totalHosts: 6,
        evidence: [OutageEvidence(host: "a1", zone: "z1", endpoint: F.mirrorA, errorClass: .tcpTimeout, detail: "dial tcp: i/o timeout")])
    static let hostDown = OutageCandidate(key: F.local("a9"), errorClass: .networkUnreachable, affectedHosts: 1, totalHosts: 6)

    static func engine(openAfter: Int = 2, recoveryHold: Duration = .seconds(300)) -> CorrelationEngine {
        CorrelationEngine(settings: CorrelationSettings(openAfter: openAfter, recoveryHold: recoveryHold))
    }

    /// Runs `windows` evaluations from window `from`, the candidate present when `present(n)`.
    static func run(
        _ engine: inout CorrelationEngine, from: Int = 0, windows: Int, candidate: OutageCandidate = mirrorDown,
        present: (Int) -> Bool
    ) -> [OutageTransition] {
        (from..<(from + windows)).flatMap { n in
            engine.evaluate(candidates: present(n) ? [candidate] : [], now: at(n))
        }
    }

    @Test("opens only after openAfter consecutive windows, dated from the first")
    func opensAfterOpenAfter() throws {
        var e = Self.engine()
        #expect(e.evaluate(candidates: [Self.mirrorDown], now: Self.at(0)).isEmpty)
        #expect(e.active.isEmpty)
        #expect(e.pendingStreaks == [Self.mirrorDown.key: 1])
        #expect(e.evaluate(candidates: [Self.mirrorDown], now: Self.at(1)) == [.opened(Self.mirrorDown, at: Self.at(0))])
        let outage = try #require(e.active[Self.mirrorDown.key])
        #expect(outage.startedAt == Self.at(0) && outage.openedAt == Self.at(1) && outage.absentSince == nil)
        #expect(e.pendingStreaks.isEmpty)
        // Present again: nothing new.
        #expect(e.evaluate(candidates: [Self.mirrorDown], now: Self.at(2)).isEmpty)
    }

    @Test("dated from when the quorum was reported: opens openAfter - 1 windows after it, at the evaluation nextDecision asks for")
    func opensFromObservation() throws {
        var e = Self.engine(openAfter: 3)
        var seen = Self.mirrorDown
        // The report completing the quorum arrived 20 s before the evaluation that first sees it.
        seen.observedAt = Self.at(1).addingTimeInterval(-20)
        #expect(e.evaluate(candidates: [seen], now: Self.at(1)).isEmpty)
        let due = try #require(e.nextDecision)
        #expect(abs(due.timeIntervalSince(Self.at(1).addingTimeInterval(-20 + 2 * Self.window))) <= Self.window / 20 + 0.001)
        // Evaluating more often than once per window does not open it early.
        #expect(e.evaluate(candidates: [seen], now: Self.at(1).addingTimeInterval(15)).isEmpty)
        #expect(e.evaluate(candidates: [seen], now: due.addingTimeInterval(-2)).isEmpty)
        #expect(e.evaluate(candidates: [seen], now: due) == [.opened(seen, at: seen.observedAt!)])
        #expect(e.nextDecision == nil)
        // A time after the evaluation (a clock step) is not believed: the start is the evaluation.
        var f = Self.engine(openAfter: 2)
        var future = Self.mirrorDown
        future.observedAt = Self.at(5)
        #expect(f.evaluate(candidates: [future], now: Self.at(0)).isEmpty)
        #expect(f.evaluate(candidates: [future], now: Self.at(1)) == [.opened(future, at: Self.at(0))])
    }

    @Test("a new candidate is never dated before the previous evaluation, which did not see it")
    func notBeforeAbsence() {
        var e = Self.engine(openAfter: 2)
        #expect(e.evaluate(candidates: [], now: Self.at(0)).isEmpty)
        var late = Self.mirrorDown
        late.observedAt = Self.at(0).addingTimeInterval(-600)  // quorum reported long ago, but absent at at(0)
        #expect(e.evaluate(candidates: [late], now: Self.at(0).addingTimeInterval(10)).isEmpty)
        #expect(e.nextDecision.map { $0 >= Self.at(1).addingTimeInterval(-Self.window / 20 - 0.001) } == true)
        #expect(e.evaluate(candidates: [late], now: Self.at(1)) == [.opened(late, at: Self.at(0))])
    }

    @Test("an absence resets the streak; openAfter 3 needs three in a row", arguments: [1, 2, 3, 5])
    func streakResets(openAfter: Int) {
        var e = Self.engine(openAfter: openAfter)
        // openAfter - 1 windows present, one absent, repeated: never opens.
        let period = openAfter
        let none = Self.run(&e, windows: 40 * period) { n in n % period != period - 1 }
        #expect(none.isEmpty)
        // Then openAfter in a row: opens at the last, dated from the first.
        let start = 40 * period
        let opened = Self.run(&e, from: start, windows: openAfter) { _ in true }
        #expect(opened == [.opened(Self.mirrorDown, at: Self.at(start))])
    }

    @Test("closes after the recovery hold, dated from the first absent window")
    func closesAfterHold() {
        var e = Self.engine(recoveryHold: .seconds(300))
        _ = Self.run(&e, windows: 2) { _ in true }
        // Absent from window 2: 300 s = 10 windows later (window 12) it closes.
        let during = Self.run(&e, from: 2, windows: 10) { _ in false }
        #expect(during.isEmpty)
        #expect(e.active[Self.mirrorDown.key]?.absentSince == Self.at(2))
        #expect(e.evaluate(candidates: [], now: Self.at(12)) == [.closed(Self.mirrorDown.key, at: Self.at(2))])
        #expect(e.active.isEmpty)
        // Gone for good: nothing more.
        #expect(Self.run(&e, from: 13, windows: 20) { _ in false }.isEmpty)
    }

    @Test("reappearing during the hold resets it and opens nothing new")
    func holdResets() {
        var e = Self.engine()
        _ = Self.run(&e, windows: 2) { _ in true }
        #expect(Self.run(&e, from: 2, windows: 9) { _ in false }.isEmpty)
        // Back at window 11, one window before the hold would have run out.
        #expect(e.evaluate(candidates: [Self.mirrorDown], now: Self.at(11)).isEmpty)
        #expect(e.active[Self.mirrorDown.key]?.absentSince == nil)
        #expect(e.active[Self.mirrorDown.key]?.startedAt == Self.at(0))
        // A full new hold is needed from window 12.
        #expect(Self.run(&e, from: 12, windows: 10) { _ in false }.isEmpty)
        #expect(e.evaluate(candidates: [], now: Self.at(22)) == [.closed(Self.mirrorDown.key, at: Self.at(12))])
    }

    @Test("flapping every other window for an hour never opens: no two windows in a row")
    func flappingNeverOpens() {
        var e = Self.engine()
        #expect(Self.run(&e, windows: 120) { $0 % 2 == 0 }.isEmpty)
        #expect(e.active.isEmpty)
    }

    @Test("flapping for an hour after it opened: one outage, kept open, closed once after it settles", arguments: [1, 2])
    func flappingStaysOne(openAfter: Int) {
        var e = Self.engine(openAfter: openAfter)
        let opening = Self.run(&e, windows: openAfter) { _ in true }
        let flapping = Self.run(&e, from: openAfter, windows: 120) { $0 % 2 == 1 }
        let all = opening + flapping
        #expect(all.filter { if case .opened = $0 { true } else { false } }.count == 1)
        #expect(!all.contains { if case .closed = $0 { true } else { false } })
        #expect(e.active.count == 1)
        let settled = Self.run(&e, from: openAfter + 120, windows: 20) { _ in false }
        #expect(settled.count == 1)
        if case .closed(let key, _) = settled.first { #expect(key == Self.mirrorDown.key) } else { Issue.record("expected a close") }
    }

    @Test("updated only when class or size changes, not when evidence text does")
    func updates() {
        var e = Self.engine()
        _ = Self.run(&e, windows: 2) { _ in true }
        var noisier = Self.mirrorDown
        noisier.evidence[0].detail = "dial tcp: i/o timeout after 10002 ms"
        #expect(e.evaluate(candidates: [noisier], now: Self.at(2)).isEmpty)
        #expect(e.active[noisier.key]?.candidate == noisier)
        var bigger = noisier
        bigger.affectedHosts = 5
        #expect(e.evaluate(candidates: [bigger], now: Self.at(3)) == [.updated(bigger, at: Self.at(3))])
        var reclassified = bigger
        reclassified.errorClass = .tcpRefused
        #expect(e.evaluate(candidates: [reclassified], now: Self.at(4)) == [.updated(reclassified, at: Self.at(4))])
    }

    @Test("keys are independent; transitions come in key order")
    func independentKeys() {
        var e = Self.engine()
        #expect(e.evaluate(candidates: [Self.hostDown, Self.mirrorDown], now: Self.at(0)).isEmpty)
        let both = e.evaluate(candidates: [Self.mirrorDown, Self.hostDown], now: Self.at(1))
        #expect(both == [.opened(Self.mirrorDown, at: Self.at(0)), .opened(Self.hostDown, at: Self.at(0))])
        #expect(both.map(\.key) == both.map(\.key).sorted())
        // One goes away, the other stays.
        let t = Self.run(&e, from: 2, windows: 12, candidate: Self.hostDown) { _ in true }
        #expect(t == [.closed(Self.mirrorDown.key, at: Self.at(2))])
        #expect(e.active.keys.sorted() == [Self.hostDown.key])
    }

    @Test("restored from persisted active outages: no second open, start kept, hold continues")
    func restore() throws {
        var first = Self.engine()
        _ = Self.run(&first, windows: 3) { _ in true }
        _ = first.evaluate(candidates: [], now: Self.at(3)) // absent: hold started
        let saved = try JSONEncoder().encode(Array(first.active.values))

        // The aggregator restarts.
        let loaded = try JSONDecoder().decode([ActiveOutage].self, from: saved)
        var second = CorrelationEngine(settings: first.settings, active: loaded)
        #expect(second.active == first.active)
        #expect(second.evaluate(candidates: [Self.mirrorDown], now: Self.at(4)).isEmpty)
        #expect(second.active[Self.mirrorDown.key]?.startedAt == Self.at(0))

        // Restored while absent: closes on the original schedule (hold from window 3 = window 13).
        var third = CorrelationEngine(settings: first.settings, active: first.active)
        #expect(Self.run(&third, from: 4, windows: 9) { _ in false }.isEmpty)
        #expect(third.evaluate(candidates: [], now: Self.at(13)) == [.closed(Self.mirrorDown.key, at: Self.at(3))])
    }

    @Test("restored outage with a different size reports an update, not an open")
    func restoreThenUpdate() {
        let persisted = ActiveOutage(candidate: Self.mirrorDown, startedAt: Self.at(-100))
        var e = CorrelationEngine(settings: CorrelationSettings(), active: [persisted])
        var now = Self.mirrorDown
        now.affectedHosts = 6
        #expect(e.evaluate(candidates: [now], now: Self.at(0)) == [.updated(now, at: Self.at(0))])
    }

    @Test("a zero recovery hold closes at the first absence; openAfter 1 opens at the first sighting")
    func edgeSettings() {
        var e = Self.engine(openAfter: 1, recoveryHold: .zero)
        #expect(e.evaluate(candidates: [Self.mirrorDown], now: Self.at(0)) == [.opened(Self.mirrorDown, at: Self.at(0))])
        #expect(e.evaluate(candidates: [], now: Self.at(1)) == [.closed(Self.mirrorDown.key, at: Self.at(1))])
    }

    @Test("from rows: a mirror outage opens after two windows and closes after the hold")
    func fromRows() throws {
        var e = CorrelationEngine(settings: CorrelationSettings(AggregatorConfig().correlation))
        func rows(failing: Bool, _ n: Int) -> [LatestStateRow] {
            let f: [String: ErrorClass] = failing ? [F.mirrorA: .tcpTimeout] : [:]
            return (F.hosts(["a1", "a2"], zone: "z1", failing: f) + F.hosts(["b1", "b2"], zone: "z2", failing: f)).map { row in
                var r = row
                r.observedAt = Self.at(n)
                return r
            }
        }
        #expect(e.evaluate(rows: rows(failing: true, 0), now: Self.at(0)).isEmpty)
        let opened = e.evaluate(rows: rows(failing: true, 1), now: Self.at(1))
        let candidate = try #require(opened.first.flatMap { if case .opened(let c, _) = $0 { c } else { nil } })
        #expect(opened.count == 1 && candidate.key == F.endpointDown(F.mirrorA) && candidate.affectedHosts == 4)
        var closed: [OutageTransition] = []
        for n in 2..<30 { closed += e.evaluate(rows: rows(failing: false, n), now: Self.at(n)) }
        #expect(closed == [.closed(F.endpointDown(F.mirrorA), at: Self.at(2))])
    }
}
