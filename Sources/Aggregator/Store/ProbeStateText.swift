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

    /// A previous state's class and since when, by endpoint.
    public struct Previous: Sendable {
        var registry: String
        var endpoint: String
        var errorClass: String
        var since: Double?
    }

    /// The classes in a stored `host.probes`; empty when it is empty or unreadable (then every class
    /// starts now, as for a new host). Reads the first five values of each element only.
    static func previous(_ text: UnsafeBufferPointer<UInt8>) -> [Previous] {
        var out: [Previous] = []
        let ok = CompactJSONReader.forEachRow(bytes: text, prefix: 5) { row in
            guard row.count > 4, let registry = row[0].string, let endpoint = row[1].string, let cls = row[3].string else { return }
            out.append(Previous(registry: registry, endpoint: endpoint, errorClass: cls, since: row[4].double))
        }
        return ok ? out : []
    }

    /// `host.probes` for a report, encoded where the report is decoded except each element's
    /// `classSince`, which depends on the stored state and is filled in by ``text(receivedAt:previous:)``
    /// inside the write transaction. One element per endpoint (the last probe of an endpoint named twice
    /// wins), ordered by registry and endpoint bytewise.
    public struct Latest: Sendable {
        struct Element: Sendable {
            var registry: String
            var endpoint: String
            var errorClass: String
            /// `["registry","endpoint","role","class",` and `,"detail",…]`: the element around classSince.
            var head: [UInt8]
            var tail: [UInt8]
        }

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
            for i in chosen {
                let p = probes[i]
                let cls = p.errorClass.rawValue
                var head = JSONBytes(capacity: 128)
                head.raw("[")
                head.quoted(p.endpoint.registry)
                head.raw(",")
                head.quoted(p.endpoint.url)
                head.raw(",")
                head.quoted(p.endpoint.role.rawValue)
                head.raw(",")
                head.quoted(cls)
                head.raw(",")
                var tail = JSONBytes(capacity: 320)
                tail.raw(",")
                tail.quoted(p.detail)
                for v in [p.phases.dnsMs, p.phases.connectMs, p.phases.tlsMs, p.phases.ttfbMs, p.phases.totalMs] {
                    tail.raw(",")
                    tail.number(v)
                }
                tail.raw(","); tail.number(p.tls.map { $0.trusted ? 1 : 0 })
                tail.raw(","); tail.number(p.tls?.daysLeft)
                tail.raw(","); tail.number(p.tls?.expiresAt?.unixSeconds)
                tail.raw(","); tail.number(p.rateLimit?.limit)
                tail.raw(","); tail.number(p.rateLimit?.remaining)
                tail.raw(","); tail.number(p.rateLimit?.windowSeconds)
                tail.raw(","); tail.quoted(p.rateLimit?.source)
                tail.raw(","); tail.quoted(p.manifest?.reference)
                tail.raw(","); tail.number(p.manifest?.status)
                tail.raw(","); tail.quoted(p.manifest?.digest)
                tail.raw(","); tail.number(p.checkedAt.unixSeconds)
                tail.raw("]")
                elements.append(Element(registry: p.endpoint.registry, endpoint: p.endpoint.url, errorClass: cls, head: head.bytes, tail: tail.bytes))
            }
        }

        /// The column text: each class keeps its `classSince` from `previous` while it stays the same,
        /// else starts at `receivedAt`.
        public func text(receivedAt: Double, previous: [Previous] = []) -> String {
            var out = JSONBytes(capacity: elements.reduce(2) { $0 + $1.head.count + $1.tail.count + 24 })
            out.raw("[")
            for (n, e) in elements.enumerated() {
                if n > 0 { out.raw(",") }
                let before = previous.first { $0.registry == e.registry && $0.endpoint == e.endpoint }
                let since = before.flatMap { $0.errorClass == e.errorClass ? $0.since : nil } ?? receivedAt
                out.raw(e.head)
                out.number(since)
                out.raw(e.tail)
            }
            out.raw("]")
            return out.string
        }
    }

    /// `probe_report.probes`: every probe of the report, in report order.
    public static func samples(_ probes: [ProbeResult]) -> String {
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
        return out.string
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
