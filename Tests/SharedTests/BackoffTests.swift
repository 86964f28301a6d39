@testable import RegwatchShared
import Testing
import RegwatchTestSupport

@Suite("Reconnect backoff")
struct BackoffTests {
    @Test("delays double up to the cap, each drawn from [d/2, d]")
    func growth() {
        var b = ReconnectBackoff(initialMs: 500, maxMs: 30_000)
        var rng = SplitMix(seed: 1)
        let ceilings = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        for ceiling in ceilings {
            let d = b.next(using: &rng)
            #expect(d >= ceiling / 2 && d <= ceiling, "delay \(d) outside [\(ceiling / 2), \(ceiling)]")
        }
        b.reset()
        #expect(b.next(using: &rng) <= 500)
    }

    @Test("10,000 agents cut off together do not retry in lockstep")
    func spread() {
        var rng = SplitMix(seed: 42)
        var firsts: [Int] = []
        for _ in 0..<10_000 {
            var b = ReconnectBackoff(initialMs: 1000, maxMs: 30_000)
            for _ in 0..<4 { _ = b.next(using: &rng) }
            firsts.append(b.next(using: &rng)) // fifth attempt: ceiling 16 s
        }
        #expect(Set(firsts).count > 5_000)
        let perSecond = Dictionary(grouping: firsts, by: { $0 / 1000 }).mapValues(\.count)
        #expect(perSecond.keys.count >= 8)       // spread over the 8 s..16 s range
        #expect(perSecond.values.max()! < 2_000) // no second takes more than a fifth of the fleet
    }

    @Test("a huge attempt count never overflows")
    func noOverflow() {
        var b = ReconnectBackoff(initialMs: 500, maxMs: 30_000)
        var rng = SplitMix(seed: 7)
        for _ in 0..<200 { _ = b.next(using: &rng) }
        #expect(b.next(using: &rng) <= 30_000)
    }
}
