@testable import RegwatchShared
import Testing

/// A deterministic generator so jitter is testable.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Reconnect backoff")
struct BackoffTests {
    @Test("delays double up to the cap, each drawn from [d/2, d]")
    func growth() {
        var b = ReconnectBackoff(initialMs: 500, maxMs: 30_000)
        var rng = SplitMix(state: 1)
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
        var rng = SplitMix(state: 42)
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
        var rng = SplitMix(state: 7)
        for _ in 0..<200 { _ = b.next(using: &rng) }
        #expect(b.next(using: &rng) <= 30_000)
    }
}
