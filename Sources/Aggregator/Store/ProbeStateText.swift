import Foundation
import RegwatchShared

/// The two JSON columns a report's probes are stored in, one row each instead of one row per probe:
/// `host.probes` (the latest state of every endpoint the host probes) and `probe_report.probes` (the
/// report's samples for the roll-up). Ingest measured a row write at about 5 µs whatever its size, so
/// eleven rows per report (host, five endpoint states, five samples) capped ingest near 20k reports/s
/// on two cores; two rows per report do not.
///
/// Both are arrays of positional arrays, written here without an encoder and read back in Swift
/// (``forEachLatest(_:_:)``) and by SQL through the `endpoint_state` and `probe_sample` views
/// (``StoreSchema``), which use the positions of ``latestColumns`` and of ``samples(_:)``.
public enum ProbeStateText {
    /// Positions in a `host.probes` element.
    static let latestColumns = [
        "registry", "endpoint", "role", "class", "classSince", "detail", "dnsMs", "connectMs", "tlsMs", "ttfbMs", "totalMs",
        "tlsTrusted", "tlsDaysLeft", "tlsExpiresAt", "rateLimitLimit", "rateLimitRemaining", "rateLimitWindowSeconds",
        "rateLimitSource", "manifestReference", "manifestStatus", "manifestDigest", "checkedAt",
    ]

    /// A stored `host.probes`, kept as its bytes: where each element's endpoint, class and `classSince`
    /// are. Nothing is converted: a class that stays the same keeps its `classSince` text as stored, so
    /// the write path neither parses nor formats that number (reading it back was half the committing
    /// thread's time).
    public struct Previous: Sendable {
        struct Element: Sendable {
            /// `["registry","endpoint",`
            var key: Range<Int>
            /// `"class"`
            var errorClass: Range<Int>
            /// The number, or nil when it was anything else (`null`).
            var since: Range<Int>?
        }

        var bytes: [UInt8] = []
        var elements: [Element] = []

        public init() {}

        /// Scans `text` as ``Latest`` writes it; an element shaped otherwise is skipped, and a text that
        /// is not an array of arrays yields no elements (then every class starts now, as for a new host).
        init(_ text: UnsafeBufferPointer<UInt8>) {
            bytes = Array(text)
            guard let found = Self.scan(bytes) else { return }
            elements = found
        }

        private static func scan(_ b: [UInt8]) -> [Element]? {
            var i = 0
            func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
            func take(_ c: UInt8) -> Bool {
                skipSpace()
                guard i < b.count, b[i] == c else { return false }
                i += 1
                return true
            }
            /// A JSON string token from its opening quote; false when there is none.
            func string() -> Bool {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { return false }
                i += 1
                while i < b.count {
                    if b[i] == UInt8(ascii: "\\") { i += 2; continue }
                    if b[i] == UInt8(ascii: "\"") { i += 1; return true }
                    i += 1
                }
                return false
            }
            /// To the `]` that closes the current flat element, past strings; false at the end of the text.
            func closeElement() -> Bool {
                while i < b.count {
                    if b[i] == UInt8(ascii: "\"") {
                        guard string() else { return false }
                        continue
                    }
                    if b[i] == UInt8(ascii: "]") { i += 1; return true }
                    if b[i] == UInt8(ascii: "[") || b[i] == UInt8(ascii: "{") { return false }
                    i += 1
                }
                return false
            }
            var out: [Element] = []
            guard take(UInt8(ascii: "[")) else { return nil }
            if take(UInt8(ascii: "]")) { return out }
            repeat {
                skipSpace()
                let start = i
                guard take(UInt8(ascii: "[")) else { return nil }
                var element: Element?
                if string(), take(UInt8(ascii: ",")), string(), take(UInt8(ascii: ",")) {
                    let key = start..<i
                    if string(), take(UInt8(ascii: ",")) {
                        skipSpace()
                        let cls = i
                        if string() {
                            let clsEnd = i
                            if take(UInt8(ascii: ",")) {
                                skipSpace()
                                let since = i
                                while i < b.count, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "]"), b[i] != 0x20 { i += 1 }
                                // A number (anything else, `null` included, starts the class again).
                                let number = i > since && (b[since] == UInt8(ascii: "-") || (b[since] >= UInt8(ascii: "0") && b[since] <= UInt8(ascii: "9")))
                                element = Element(key: key, errorClass: cls..<clsEnd, since: number ? since..<i : nil)
                            }
                        }
                    }
                }
                guard closeElement() else { return nil }
                if let element { out.append(element) }
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "]")) else { return nil }
            skipSpace()
            return i == b.count ? out : nil
        }

        /// The stored `classSince` text of the element with this key and class.
        func since(key: ArraySlice<UInt8>, errorClass: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
            for e in elements where bytes[e.key].elementsEqual(key) {
                guard let since = e.since, bytes[e.errorClass].elementsEqual(errorClass) else { return nil }
                return bytes[since]
            }
            return nil
        }
    }

    /// `host.probes` for a report, encoded where the report is decoded except each element's
    /// `classSince`, which depends on the stored state and is filled in by ``text(receivedAt:previous:)``
    /// inside the write transaction. One element per endpoint (the last probe of an endpoint named twice
    /// wins), ordered by registry and endpoint bytewise.
    public struct Latest: Sendable {
        /// Ranges in ``bytes``.
        struct Element: Sendable {
            /// `["registry","endpoint","role","class",` and `,"detail",…]`: the element around classSince.
            var head: Range<Int>
            var tail: Range<Int>
            /// `["registry","endpoint",` and `"class"`, to find the stored element.
            var key: Range<Int>
            var errorClass: Range<Int>
        }

        /// Every element's head and tail, in one buffer (one allocation per report, not two per probe).
        var bytes: [UInt8] = []
        var elements: [Element] = []

        public init(_ probes: [ProbeResult]) {
            var chosen: [Int] = []
            chosen.reserveCapacity(probes.count)
            for i in probes.indices {
                let e = probes[i].endpoint
                if let j = chosen.firstIndex(where: { probes[$0].endpoint.registry == e.registry && probes[$0].endpoint.url == e.url }) {
                    chosen[j] = i
                } else {
                    chosen.append(i)
                }
            }
            chosen.sort { a, b in
                let x = probes[a].endpoint, y = probes[b].endpoint
                if x.registry != y.registry { return x.registry.utf8.lexicographicallyPrecedes(y.registry.utf8) }
                return x.url.utf8.lexicographicallyPrecedes(y.url.utf8)
            }
            elements.reserveCapacity(chosen.count)
            var out = JSONBytes(capacity: 448 * chosen.count)
            for i in chosen {
                let p = probes[i]
                let start = out.bytes.count
                out.raw("[")
                out.quoted(p.endpoint.registry)
                out.raw(",")
                out.quoted(p.endpoint.url)
                out.raw(",")
                let keyEnd = out.bytes.count
                out.quoted(p.endpoint.role.rawValue)
                out.raw(",")
                let classStart = out.bytes.count
                out.quoted(p.errorClass.rawValue)
                let classEnd = out.bytes.count
                out.raw(",")
                let tailStart = out.bytes.count
                out.raw(",")
                out.quoted(p.detail)
                out.raw(","); out.number(p.phases.dnsMs)
                out.raw(","); out.number(p.phases.connectMs)
                out.raw(","); out.number(p.phases.tlsMs)
                out.raw(","); out.number(p.phases.ttfbMs)
                out.raw(","); out.number(p.phases.totalMs)
                out.raw(","); out.number(p.tls.map { $0.trusted ? 1 : 0 })
                out.raw(","); out.number(p.tls?.daysLeft)
                out.raw(","); out.number(p.tls?.expiresAt?.unixSeconds)
                out.raw(","); out.number(p.rateLimit?.limit)
                out.raw(","); out.number(p.rateLimit?.remaining)
                out.raw(","); out.number(p.rateLimit?.windowSeconds)
                out.raw(","); out.quoted(p.rateLimit?.source)
                out.raw(","); out.quoted(p.manifest?.reference)
                out.raw(","); out.number(p.manifest?.status)
                out.raw(","); out.quoted(p.manifest?.digest)
                out.raw(","); out.number(p.checkedAt.unixSeconds)
                out.raw("]")
                elements.append(Element(head: start..<tailStart, tail: tailStart..<out.bytes.count, key: start..<keyEnd, errorClass: classStart..<classEnd))
            }
            bytes = out.bytes
        }

        /// The column text: each class keeps its `classSince` from `previous` while it stays the same,
        /// else starts at `receivedAt`.
        public func text(receivedAt: Double, previous: Previous = .init()) -> [UInt8] {
            var out = JSONBytes(capacity: bytes.count + 24 * elements.count + 2)
            var now: [UInt8] = []
            out.raw("[")
            for (n, e) in elements.enumerated() {
                if n > 0 { out.raw(",") }
                out.bytes.append(contentsOf: bytes[e.head])
                if let since = previous.since(key: bytes[e.key], errorClass: bytes[e.errorClass]) {
                    out.bytes.append(contentsOf: since)
                } else {
                    if now.isEmpty {
                        var text = JSONBytes(capacity: 24)
                        text.number(receivedAt)
                        now = text.bytes
                    }
                    out.raw(now)
                }
                out.bytes.append(contentsOf: bytes[e.tail])
            }
            out.raw("]")
            return out.bytes
        }
    }

    /// `probe_report.probes`: every probe of the report, in report order.
    public static func samples(_ probes: [ProbeResult]) -> [UInt8] {
        var out = JSONBytes(capacity: 96 * probes.count + 2)
        out.raw("[")
        for (n, p) in probes.enumerated() {
            out.raw(n == 0 ? "[" : ",[")
            out.quoted(p.endpoint.registry)
            out.raw(",")
            out.quoted(p.endpoint.url)
            out.raw(",")
            out.quoted(p.errorClass.rawValue)
            out.raw(",")
            let total = p.phases.totalMs.flatMap { $0.isFinite ? $0 : nil }
            out.number(total)
            out.raw(",")
            out.number(total.map(LatencyHistogram.bucket(forMs:)))
            out.raw("]")
        }
        out.raw("]")
        return out.bytes
    }

    /// Reads a `host.probes` text back: `body(probe, classSince)` per element, in stored order. Elements
    /// that are not shaped as written are skipped; false when the text is not an array of arrays.
    @discardableResult
    static func forEachLatest(_ text: String, _ body: (ProbeResult, Double?) -> Void) -> Bool {
        CompactJSONReader.forEachRow(text) { v in
            guard v.count == latestColumns.count, let registry = v[0].string, let url = v[1].string,
                  let checkedAt = v[21].double else { return }
            let tls = v[11].int.map { TLSState(trusted: $0 != 0, daysLeft: v[12].int, expiresAt: v[13].double.map(Date.init(unixSeconds:))) }
            var rateLimit: RateLimitState?
            if let limit = v[14].int, let remaining = v[15].int, let window = v[16].int {
                rateLimit = RateLimitState(limit: limit, remaining: remaining, windowSeconds: window, source: v[17].string)
            }
            let manifest = v[18].string.map { ManifestState(reference: $0, status: v[19].int, digest: v[20].string) }
            let probe = ProbeResult(
                endpoint: Endpoint(registry: registry, url: url, role: v[2].string.flatMap(Endpoint.Role.init(rawValue:)) ?? .mirror),
                errorClass: v[3].string.flatMap(ErrorClass.init(rawValue:)) ?? .unknown, detail: v[5].string ?? "",
                phases: PhaseTimings(dnsMs: v[6].double, connectMs: v[7].double, tlsMs: v[8].double, ttfbMs: v[9].double, totalMs: v[10].double),
                tls: tls, rateLimit: rateLimit, manifest: manifest, checkedAt: Date(unixSeconds: checkedAt))
            body(probe, v[4].double)
        }
    }
}
