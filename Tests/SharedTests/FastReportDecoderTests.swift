import Foundation
@testable import RegwatchShared
import Testing
import RegwatchTestSupport

/// The fast report decoder must decode exactly what `JSONDecoder` decodes, or decline (nil) and let it.
@Suite("Fast report decoder")
struct FastReportDecoderTests {
    let codec = WireCodec()

    /// Both paths on one frame: when the fast one answers, the reference must have produced the same
    /// envelope; when the reference throws, the fast one must have declined.
    @discardableResult
    func agree(_ frame: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let fast = FastReportDecoder.decode(frame)
        let reference = Result { () throws(WireError) -> WireMessage in try codec.decodeWithFoundation(frame) }
        switch (fast, reference) {
        case (nil, _): return false
        case (let f?, .success(.report(let r))):
            #expect(f == r, "fast and JSONDecoder differ on \(String(decoding: frame, as: UTF8.self))", sourceLocation: sourceLocation)
        case (let f?, let other):
            Issue.record("fast path decoded \(f.host) where JSONDecoder gave \(other): \(String(decoding: frame, as: UTF8.self))", sourceLocation: sourceLocation)
        }
        return true
    }

    @Test("golden and compatibility fixtures decode the same on both paths, on the fast one")
    func fixtures() throws {
        for name in ["report.json", "compat/report.newer-fields.json", "compat/report.minimal-v1.json"] {
            let frame = Array(try WireFixtureTests.fixture(name))
            #expect(agree(frame), "\(name) was not taken by the fast path")
        }
        #expect(agree(try codec.encode(WireSamples.report)))
        // Other message types are left to JSONDecoder.
        for name in ["pull_events.json", "events_ack.json", "failover_ack.json", "failover_command.json"] {
            #expect(FastReportDecoder.decode(Array(try WireFixtureTests.fixture(name))) == nil)
        }
    }

    @Test("random reports round-trip identically through both decoders")
    func randomReports() throws {
        var rng = SplitMix(seed: 42)
        var fastTaken = 0
        for n in 0..<400 {
            let envelope = Envelope(host: "h\(n)", seq: rng.next(), sentAt: randomDate(&rng), body: randomReport(&rng))
            if agree(try codec.encode(envelope)) { fastTaken += 1 }
            if agree(Array(try JSONCoding.encoder(pretty: true).encode(envelope))) { fastTaken += 1 }
        }
        // Times near 2001, exponents and odd keys decline; most reports are fast.
        #expect(fastTaken > 250, "fast path taken \(fastTaken) of 800 times")
    }

    @Test("damaged, odd and hostile variants: the fast path declines or agrees")
    func mutations() throws {
        let base = String(decoding: try codec.encode(WireSamples.report), as: UTF8.self)
        var variants: [String] = []
        // Every truncation and every single deleted byte.
        let bytes = Array(base.utf8)
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            variants.append(String(decoding: bytes[..<cut], as: UTF8.self))
            var deleted = bytes
            deleted.remove(at: cut)
            variants.append(String(decoding: deleted, as: UTF8.self))
        }
        let edits: [(String, String)] = [
            ("\"v\":1", "\"v\":2"), ("\"v\":1", "\"v\":0"), ("\"v\":1", "\"v\":1.0"), ("\"v\":1", "\"v\":\"1\""),
            ("\"type\":\"report\"", "\"type\":\"pull_events\""), ("\"type\":\"report\"", "\"type\":\"rep\\u006frt\""),
            ("\"seq\":42", "\"seq\":-42"), ("\"seq\":42", "\"seq\":4.2e1"), ("\"seq\":42", "\"seq\":18446744073709551616"),
            ("\"seq\":42", "\"seq\":042"), ("\"seq\":42", "\"seq\":null"),
            ("\"agentVersion\":\"0.1.0\"", "\"agentVersion\":null"), ("\"agentVersion\":\"0.1.0\"", "\"agentVersion\":7"),
            ("\"intervalSeconds\":30", "\"intervalSeconds\":3e1"), ("\"intervalSeconds\":30", "\"intervalSeconds\":null"),
            ("\"intervalSeconds\":30", "\"intervalSeconds\":-0.5"), ("\"intervalSeconds\":30", "\"intervalSeconds\":30."),
            ("\"class\":\"tcp_timeout\"", "\"class\":\"quic_blocked\""), ("\"class\":\"tcp_timeout\"", "\"class\":null"),
            ("\"role\":\"mirror\"", "\"role\":\"sidecar\""), ("\"runtime\":\"docker\"", "\"runtime\":\"podman\""),
            ("\"trusted\":true", "\"trusted\":null"), ("\"trusted\":true", "\"trusted\":1"),
            ("\"daysLeft\":41", "\"daysLeft\":41.5"), ("\"daysLeft\":41", "\"daysLeft\":null"),
            ("\"labels\":{", "\"labels\":{\"zone\":\"dup\","), ("\"labels\":{", "\"labels\":{\"z\\u00e9\":\"x\","),
            ("\"labels\":{", "\"labels\":{\"n\":null,"), ("\"labels\":{", "\"labels\":null,\"x\":{"),
            ("\"body\":{", "\"body\":{\"host\":{\"id\":\"other\"},"), ("\"body\":{", "\"body\":{\"future\":{\"a\":[1,2.5,-3e2,true,null,\"\\ud83d\\ude00\"]},"),
            ("\"body\":{", "\"body\":{\"bad\":\"\\ud83d\","), ("\"body\":{", "\"body\":{\"bad\":\"\\x\","), ("\"body\":{", "\"body\":{\"bad\":[1,],"),
            ("\"detail\":\"dial", "\"detail\":\"\\\"quoted\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 é 😀 dial"),
            ("\"detail\":\"dial", "\"detail\":\"\u{01}dial"),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2025-11-24T16:00:00Z\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2025-11-24T16:00:00.5Z\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2025-11-24T17:00:00+01:00\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2025-02-29T16:00:00.000Z\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2025-11-24T24:00:00.000Z\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"yesterday\""),
            ("\"cycleStartedAt\":\"2025-11-24T16:00:00.000Z\"", "\"cycleStartedAt\":\"2001-01-01T00:00:00.041Z\""),
            ("\"mirrorPools\":{", "\"mirrorPools\":{\"quay.io\":[\"https://q\",{\"url\":\"https://r\",\"insecure\":null}],"),
            ("\"mirrorPools\":{", "\"mirrorPools\":{\"quay.io\":[null],"),
            ("\"eventSources\":[", "\"eventSources\":[{\"name\":\"x\",\"state\":\"sleeping\",\"detail\":\"\"},"),
            ("\"eventSources\":[", "\"eventSources\":[{\"name\":\"x\",\"state\":\"active\"},"),
        ]
        for (from, to) in edits {
            #expect(base.contains(from), "fixture lacks \(from)")
            variants.append(base.replacingOccurrences(of: from, with: to))
        }
        variants += [base + " \n", base + "x", " \t" + base, "\u{FEFF}" + base, "[" + base + "]"]
        for v in variants { agree(Array(v.utf8)) }
    }

    @Test("times: the computed shapes equal RFC3339.parse from 2003 on; earlier ones are declined")
    func times() {
        var rng = SplitMix(seed: 7)
        for n in 0..<20_000 {
            // Mostly recent times, some across the whole supported range.
            let ms = n % 4 == 0 ? Int64.random(in: 0...253_402_300_799_999, using: &rng) : Int64.random(in: 1_600_000_000_000...2_000_000_000_000, using: &rng)
            let text = Self.rfc3339(ms: ms, fraction: n % 5 != 0)
            let fast = Array(text.utf8).withUnsafeBufferPointer { JSONReader.fastRFC3339($0) }
            if ms < 1_041_379_200_000 { // 2003-01-01
                #expect(fast == nil, "\(text)")
            } else {
                #expect(fast != nil && fast == RFC3339.parse(text), "\(text): \(String(describing: fast?.timeIntervalSinceReferenceDate)) vs \(String(describing: RFC3339.parse(text)?.timeIntervalSinceReferenceDate))")
            }
        }
    }

    static func rfc3339(ms: Int64, fraction: Bool) -> String {
        var t = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&t, &tm)
        let base = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
        return fraction ? base + String(format: ".%03dZ", Int(ms % 1000)) : base + "Z"
    }

    // MARK: Random values


    func randomDate(_ rng: inout SplitMix) -> Date {
        // Millisecond times as agents send them; a few near the 2001 epoch, where the fast path declines.
        let ms = Int.random(in: 0..<40, using: &rng) == 0 ? Int64.random(in: 970_000_000_000...990_000_000_000, using: &rng)
            : Int64.random(in: 1_700_000_000_000...1_900_000_000_000, using: &rng)
        return RFC3339.parse(RFC3339.format(Date(timeIntervalSince1970: Double(ms) / 1000)))!
    }

    func randomString(_ rng: inout SplitMix) -> String {
        let pieces = ["docker.io", "https://mirror-a:5000", "", "dial tcp 10.0.0.5:443: i/o timeout", "quote \" back \\ slash /",
                      "tab\tnew\nline\r", "\u{01}\u{1F}", "é", "Zürich", "😀", "\u{7F}", "a\u{0301}", "ＫＥＹ"]
        return (0..<Int.random(in: 0...3, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    func maybe<T>(_ rng: inout SplitMix, _ make: (inout SplitMix) -> T) -> T? {
        Bool.random(using: &rng) ? make(&rng) : nil
    }

    func randomDouble(_ rng: inout SplitMix) -> Double {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0: Double.random(in: 0...0.0001, using: &rng) // printed with an exponent: declined
        case 1..<30: Double(Int.random(in: 0...5000, using: &rng))
        case 30..<70: Double(Int.random(in: 0...5_000_000, using: &rng)) / 1000
        default: Double.random(in: 0...10_000, using: &rng)
        }
    }

    /// Dictionary keys: plain names, now and then one with escapes or non-ASCII text (declined).
    func randomKey(_ rng: inout SplitMix) -> String {
        Int.random(in: 0..<20, using: &rng) == 0 ? randomString(&rng)
            : ["zone", "egress", "rack", "docker.io", "quay.io", "ghcr.io", "k8s.gcr.io", ""].randomElement(using: &rng)!
    }

    func randomReport(_ rng: inout SplitMix) -> Report {
        let probes = (0..<Int.random(in: 0...6, using: &rng)).map { _ in
            ProbeResult(
                endpoint: Endpoint(registry: randomString(&rng), url: randomString(&rng), role: Bool.random(using: &rng) ? .mirror : .upstream),
                errorClass: ErrorClass.allCases.randomElement(using: &rng)!, detail: randomString(&rng),
                phases: PhaseTimings(dnsMs: maybe(&rng, randomDouble), connectMs: maybe(&rng, randomDouble), tlsMs: maybe(&rng, randomDouble),
                                     ttfbMs: maybe(&rng, randomDouble), totalMs: maybe(&rng, randomDouble)),
                tls: maybe(&rng) { r in TLSState(trusted: Bool.random(using: &r), daysLeft: maybe(&r) { Int.random(in: -100...400, using: &$0) }, expiresAt: maybe(&r, randomDate)) },
                rateLimit: maybe(&rng) { r in RateLimitState(limit: Int.random(in: 0...1000, using: &r), remaining: Int.random(in: -5...1000, using: &r), windowSeconds: 21600, source: maybe(&r, randomString)) },
                manifest: maybe(&rng) { r in ManifestState(reference: randomString(&r), status: maybe(&r) { Int.random(in: 100...599, using: &$0) }, digest: maybe(&r, randomString)) },
                checkedAt: randomDate(&rng))
        }
        let runtimes = (0..<Int.random(in: 0...2, using: &rng)).map { n in
            RuntimeConfigState(runtime: RuntimeKind.allCases[n], mirrors: [randomKey(&rng): [randomString(&rng), randomString(&rng)]],
                               valid: Bool.random(using: &rng), detail: randomString(&rng), hash: randomString(&rng))
        }
        var labels: [String: String] = [:]
        for _ in 0..<Int.random(in: 0...4, using: &rng) { labels[randomKey(&rng)] = randomString(&rng) }
        return Report(
            host: HostIdentity(id: "node-\(Int.random(in: 0...99, using: &rng))", labels: labels),
            agentVersion: randomString(&rng), cycleStartedAt: randomDate(&rng), intervalSeconds: randomDouble(&rng),
            probes: probes, runtimes: runtimes, appliedGeneration: UInt64.random(in: 0...UInt64.max, using: &rng),
            mirrorPools: Bool.random(using: &rng) ? [:] : [randomKey(&rng): [MirrorSpec(url: randomString(&rng), trusted: Bool.random(using: &rng), authenticated: true, insecure: Bool.random(using: &rng))]],
            eventSources: (0..<Int.random(in: 0...2, using: &rng)).map { _ in EventSourceStatus(name: randomString(&rng), state: .absent, detail: randomString(&rng)) })
    }
}
