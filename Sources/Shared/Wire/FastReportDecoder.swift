import FoundationEssentials
import Glibc

/// A direct decoder for `report` envelopes, the message the aggregator receives tens of thousands of
/// times per second. `JSONDecoder` spends several hundred microseconds on a 2.5 KB report (generic
/// containers, a coding path per value, two passes for header and body); this reads the bytes once.
///
/// It is an accelerator, not a second definition of the format: it returns a value only when the frame
/// is plainly valid and means exactly what ``WireCodec``'s Codable path would decode (same defaults for
/// absent fields, unknown fields and unknown error classes tolerated the same way). On anything unusual
/// (a malformed or truncated frame, another message type, an unsupported version, a duplicate key, a
/// number with an exponent, a key with escapes or non-ASCII bytes, a time in another RFC 3339 shape,
/// invalid UTF-8) it returns nil and the caller decodes with `JSONDecoder`, which then produces the
/// value or the precise error. Golden fixtures and `FastReportDecoderTests` hold the two paths equal.
enum FastReportDecoder {
    static func decode(_ frame: some Collection<UInt8>) -> Envelope<Report>? {
        let result = frame.withContiguousStorageIfAvailable { buffer -> Envelope<Report>? in
            var reader = JSONReader(buffer)
            return try? reader.envelope()
        }
        return result ?? nil
    }
}

/// Thrown to abandon the fast path; never escapes ``FastReportDecoder``.
package struct FastPathBail: Error {
    package init() {}
}

/// A forward-only reader over one JSON document: validates as it goes, builds nothing it does not return.
/// The aggregator's store reads its own JSON columns with it too (package access).
package struct JSONReader {
    package typealias Bail = FastPathBail
    package let bytes: UnsafeBufferPointer<UInt8>
    package var i = 0

    package init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: Structure

    @inline(__always)
    mutating func skipWhitespace() {
        while i < bytes.count {
            let b = bytes[i]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            i += 1
        }
    }

    /// The next non-whitespace byte, not consumed.
    @inline(__always)
    package mutating func peek() throws(Bail) -> UInt8 {
        skipWhitespace()
        guard i < bytes.count else { throw Bail() }
        return bytes[i]
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8) throws(Bail) {
        guard try peek() == byte else { throw Bail() }
        i += 1
    }

    /// Walks an object: `body` is called with each key (plain ASCII, no escapes) positioned at its value,
    /// and must consume that value.
    mutating func object(_ body: (inout JSONReader, Key) throws(Bail) -> Void) throws(Bail) {
        try expect(UInt8(ascii: "{"))
        if try peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            let key = try key()
            try expect(UInt8(ascii: ":"))
            try body(&self, key)
            switch try peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return
            default: throw Bail()
            }
        }
    }

    /// Walks an array: `body` consumes one element per call.
    package mutating func array(_ body: (inout JSONReader) throws(Bail) -> Void) throws(Bail) {
        try expect(UInt8(ascii: "["))
        if try peek() == UInt8(ascii: "]") { i += 1; return }
        while true {
            try body(&self)
            switch try peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return
            default: throw Bail()
            }
        }
    }

    /// A key's bytes, compared against field names without building a String.
    struct Key {
        let base: UnsafePointer<UInt8>
        let count: Int

        @inline(__always)
        func `is`(_ name: StaticString) -> Bool {
            count == name.utf8CodeUnitCount && memcmp(base, name.utf8Start, count) == 0
        }
    }

    mutating func key() throws(Bail) -> Key {
        try expect(UInt8(ascii: "\""))
        let start = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                defer { i += 1 }
                return Key(base: bytes.baseAddress! + start, count: i - start)
            }
            // Escaped, non-ASCII or control characters in a key: leave it to JSONDecoder.
            if b == UInt8(ascii: "\\") || b >= 0x80 || b < 0x20 { throw Bail() }
            i += 1
        }
        throw Bail()
    }

    /// Consumes `null` if it is next.
    @inline(__always)
    mutating func null() throws(Bail) -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    package mutating func literal(_ word: StaticString) throws(Bail) {
        let n = word.utf8CodeUnitCount
        guard bytes.count - i >= n, memcmp(bytes.baseAddress! + i, word.utf8Start, n) == 0 else { throw Bail() }
        i += n
    }

    // MARK: Values

    package mutating func string() throws(Bail) -> String {
        try expect(UInt8(ascii: "\""))
        let start = i
        var ascii = true
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<i])
                i += 1
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let s = String(validating: slice, as: UTF8.self) else { throw Bail() }
                return s
            }
            if b == UInt8(ascii: "\\") { return try escapedString(from: start) }
            if b < 0x20 { throw Bail() }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        throw Bail()
    }

    /// The slow lane of `string()`: a string with escapes, decoded into a scratch buffer.
    private mutating func escapedString(from start: Int) throws(Bail) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(i - start + 32)
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw Bail() }
                return s
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { throw Bail() }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        // A high surrogate must be followed by an escaped low one.
                        guard bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw Bail() }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw Bail() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw Bail()
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw Bail() }
                    out.append(contentsOf: UTF8.encode(u)!)
                default: throw Bail()
                }
            default:
                if b < 0x20 { throw Bail() }
                out.append(b)
            }
        }
        throw Bail()
    }

    private mutating func hex4() throws(Bail) -> UInt32 {
        guard bytes.count - i >= 4 else { throw Bail() }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw Bail()
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// The extent of a JSON number at the cursor (grammar checked), and whether it is a plain integer.
    /// Exponents are left to JSONDecoder (rare on the wire; their range rules are its business).
    private mutating func numberToken() throws(Bail) -> (start: Int, end: Int, integer: Bool) {
        _ = try peek()
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count else { throw Bail() }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if bytes[i] >= UInt8(ascii: "1") && bytes[i] <= UInt8(ascii: "9") {
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") { i += 1 }
        } else {
            throw Bail()
        }
        var integer = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            integer = false
            i += 1
            let digits = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > digits else { throw Bail() }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") { throw Bail() }
        return (start, i, integer)
    }

    package mutating func double() throws(Bail) -> Double {
        let t = try numberToken()
        // Most values on the wire are short decimals (`95.4`, `3000`): with at most 15 significant
        // digits and 22 decimals, mantissa and power of ten are exact Doubles, so one division is the
        // correctly rounded value, the same Double strtod (and JSONDecoder) produce (Clinger's fast path).
        var p = t.start
        let negative = bytes[p] == UInt8(ascii: "-")
        if negative { p += 1 }
        var mantissa: UInt64 = 0, digits = 0, decimals = 0, seenPoint = false
        while p < t.end {
            let b = bytes[p]
            if b == UInt8(ascii: ".") {
                seenPoint = true
            } else {
                if mantissa != 0 || b != UInt8(ascii: "0") { digits += 1 }
                mantissa = mantissa &* 10 &+ UInt64(b &- 48)
                if seenPoint { decimals += 1 }
            }
            p += 1
        }
        if digits <= 15, decimals <= 22 {
            let v = Double(mantissa) / Self.powersOfTen[decimals]
            return negative ? -v : v
        }
        // At most 40 characters: longer numbers are not what encoders write; JSONDecoder decides.
        guard t.end - t.start <= 40 else { throw Bail() }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[t.start..<t.end]), as: UTF8.self)
        guard let v = Double(text), v.isFinite else { throw Bail() }
        return v
    }

    /// 1e0 ... 1e22, each exactly representable.
    static let powersOfTen: [Double] = (0...22).map { n in (0..<n).reduce(1.0) { acc, _ in acc * 10 } }

    mutating func int() throws(Bail) -> Int {
        let t = try numberToken()
        guard t.integer else { throw Bail() }
        var p = t.start
        let negative = bytes[p] == UInt8(ascii: "-")
        if negative { p += 1 }
        var v = 0
        while p < t.end {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = negative ? m.subtractingReportingOverflow(Int(bytes[p] - 48)) : m.addingReportingOverflow(Int(bytes[p] - 48))
            guard !o1, !o2 else { throw Bail() }
            v = a
            p += 1
        }
        return v
    }

    mutating func uint64() throws(Bail) -> UInt64 {
        let t = try numberToken()
        guard t.integer, bytes[t.start] != UInt8(ascii: "-") else { throw Bail() }
        var v: UInt64 = 0
        for p in t.start..<t.end {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(bytes[p] - 48))
            guard !o1, !o2 else { throw Bail() }
            v = a
        }
        return v
    }

    package mutating func bool() throws(Bail) -> Bool {
        switch try peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw Bail()
        }
    }

    /// An RFC 3339 time as `JSONCoding.decoder()` reads it. The two shapes regwatch writes
    /// (`2025-11-24T16:00:00.123Z` and `2025-11-24T16:00:00Z`) are computed here; any other text goes
    /// through ``RFC3339/parse(_:)`` itself.
    mutating func date() throws(Bail) -> Date {
        try expect(UInt8(ascii: "\""))
        let start = i
        while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
            if bytes[i] == UInt8(ascii: "\\") || bytes[i] < 0x20 { throw Bail() }
            i += 1
        }
        guard i < bytes.count else { throw Bail() }
        let text = UnsafeBufferPointer(rebasing: bytes[start..<i])
        i += 1
        if let d = Self.fastRFC3339(text) { return d }
        guard let s = String(validating: text, as: UTF8.self), let d = RFC3339.parse(s) else { throw Bail() }
        return d
    }

    /// `YYYY-MM-DDTHH:MM:SS(.fff)?Z`, years 2003...9999 only. Foundation's ISO 8601 parser adds the
    /// fraction to the whole seconds since 2001-01-01; from two years off that epoch on, a millisecond
    /// fraction lies far enough from every rounding boundary that `seconds + Double(ms) / 1000` is the
    /// same Double (verified in `FastReportDecoderTests`). Nearer 2001, and for other shapes, nil.
    static func fastRFC3339(_ t: UnsafeBufferPointer<UInt8>) -> Date? {
        guard t.count == 24 || t.count == 20 else { return nil }
        @inline(__always) func digit(_ k: Int) -> Int? {
            let b = t[k]
            return b >= 48 && b <= 57 ? Int(b - 48) : nil
        }
        @inline(__always) func number(_ k: Int, _ n: Int) -> Int? {
            var v = 0
            for p in k..<(k + n) {
                guard let d = digit(p) else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard t[4] == UInt8(ascii: "-"), t[7] == UInt8(ascii: "-"), t[10] == UInt8(ascii: "T"),
              t[13] == UInt8(ascii: ":"), t[16] == UInt8(ascii: ":"), t[t.count - 1] == UInt8(ascii: "Z"),
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2) else { return nil }
        var ms = 0
        if t.count == 24 {
            guard t[19] == UInt8(ascii: "."), let f = number(20, 3) else { return nil }
            ms = f
        }
        guard year >= 2003, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 60 else { return nil }
        // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let unix = days * 86_400 + hour * 3_600 + minute * 60 + second
        let sinceReference = Double(unix - 978_307_200)
        return Date(timeIntervalSinceReferenceDate: ms == 0 ? sinceReference : sinceReference + Double(ms) / 1000)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Skips any value, checking its syntax (JSONDecoder rejects a document with a malformed unknown field).
    package mutating func skipValue(depth: Int = 0) throws(Bail) {
        guard depth < 64 else { throw Bail() }
        switch try peek() {
        case UInt8(ascii: "{"):
            try object { (r: inout JSONReader, _: Key) throws(Bail) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try array { (r: inout JSONReader) throws(Bail) in try r.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""):
            let open = i
            i += 1
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                if b == UInt8(ascii: "\"") { return }
                if b == UInt8(ascii: "\\") || b >= 0x80 {
                    // Escapes and non-ASCII text: validated by the string decoder, from the opening quote.
                    i = open
                    _ = try string()
                    return
                }
                if b < 0x20 { throw Bail() }
            }
            throw Bail()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try numberToken()
        }
    }

    /// The document ends here (only whitespace follows).
    package mutating func end() throws(Bail) {
        skipWhitespace()
        guard i == bytes.count else { throw Bail() }
    }
}

// MARK: The report envelope

/// A field seen twice: JSONDecoder's choice between them is not ours to guess.
private struct Seen {
    var bits: UInt32 = 0

    @inline(__always)
    mutating func mark(_ n: Int) throws(FastPathBail) {
        let bit: UInt32 = 1 << UInt32(n)
        guard bits & bit == 0 else { throw FastPathBail() }
        bits |= bit
    }

    func has(_ n: Int) -> Bool { bits & (1 << UInt32(n)) != 0 }
}

extension JSONReader {
    mutating func envelope() throws(Bail) -> Envelope<Report> {
        var seen = Seen()
        var v = 0, type = "", host = "", seq: UInt64 = 0, sentAt = Date(), body: Report?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("body") { try seen.mark(0); body = try r.report() }
            else if k.is("host") { try seen.mark(1); host = try r.string() }
            else if k.is("sentAt") { try seen.mark(2); sentAt = try r.date() }
            else if k.is("seq") { try seen.mark(3); seq = try r.uint64() }
            else if k.is("type") { try seen.mark(4); type = try r.string() }
            else if k.is("v") { try seen.mark(5); v = try r.int() }
            else { try r.skipValue() }
        }
        try end()
        guard seen.bits == 0b11_1111, let body, type == MessageType.report.rawValue,
              v >= WireProtocol.minimumVersion, v <= WireProtocol.version else { throw Bail() }
        return Envelope(host: host, seq: seq, sentAt: sentAt, body: body, version: v)
    }

    mutating func report() throws(Bail) -> Report {
        var seen = Seen()
        var host: HostIdentity?, cycleStartedAt: Date?
        var agentVersion: String?, intervalSeconds: Double?, appliedGeneration: UInt64?
        var probes: [ProbeResult]?, runtimes: [RuntimeConfigState]?
        var mirrorPools: [String: [MirrorSpec]]?, eventSources: [EventSourceStatus]?, spool: SpoolStatus?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("probes") {
                try seen.mark(0)
                if try !r.null() {
                    var list: [ProbeResult] = []
                    list.reserveCapacity(8)
                    try r.array { (r: inout JSONReader) throws(Bail) in list.append(try r.probe()) }
                    probes = list
                }
            } else if k.is("host") {
                try seen.mark(1)
                host = try r.hostIdentity()
            } else if k.is("cycleStartedAt") {
                try seen.mark(2)
                cycleStartedAt = try r.date()
            } else if k.is("agentVersion") {
                try seen.mark(3)
                if try !r.null() { agentVersion = try r.string() }
            } else if k.is("intervalSeconds") {
                try seen.mark(4)
                if try !r.null() { intervalSeconds = try r.double() }
            } else if k.is("appliedGeneration") {
                try seen.mark(5)
                if try !r.null() { appliedGeneration = try r.uint64() }
            } else if k.is("runtimes") {
                try seen.mark(6)
                if try !r.null() {
                    var list: [RuntimeConfigState] = []
                    try r.array { (r: inout JSONReader) throws(Bail) in list.append(try r.runtime()) }
                    runtimes = list
                }
            } else if k.is("mirrorPools") {
                try seen.mark(7)
                if try !r.null() {
                    var pools: [String: [MirrorSpec]] = [:]
                    try r.object { (r: inout JSONReader, k: Key) throws(Bail) in
                        let name = k.string
                        var specs: [MirrorSpec] = []
                        try r.array { (r: inout JSONReader) throws(Bail) in specs.append(try r.mirrorSpec()) }
                        guard pools.updateValue(specs, forKey: name) == nil else { throw Bail() }
                    }
                    mirrorPools = pools
                }
            } else if k.is("eventSources") {
                try seen.mark(8)
                if try !r.null() {
                    var list: [EventSourceStatus] = []
                    try r.array { (r: inout JSONReader) throws(Bail) in list.append(try r.eventSource()) }
                    eventSources = list
                }
            } else if k.is("spool") {
                try seen.mark(9)
                if try !r.null() { spool = try r.spoolStatus() }
            } else {
                try r.skipValue()
            }
        }
        guard let host, let cycleStartedAt else { throw Bail() }
        return Report(
            host: host, agentVersion: agentVersion ?? "unknown", cycleStartedAt: cycleStartedAt,
            intervalSeconds: intervalSeconds ?? 30, probes: probes ?? [], runtimes: runtimes ?? [],
            appliedGeneration: appliedGeneration ?? 0, mirrorPools: mirrorPools ?? [:], eventSources: eventSources ?? [],
            spool: spool)
    }

    mutating func hostIdentity() throws(Bail) -> HostIdentity {
        var seen = Seen()
        var id: String?, labels: [String: String] = [:]
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("id") {
                try seen.mark(0)
                id = try r.string()
            } else if k.is("labels") {
                try seen.mark(1)
                if try !r.null() { labels = try r.stringDictionary() }
            } else {
                try r.skipValue()
            }
        }
        guard let id else { throw Bail() }
        return HostIdentity(id: id, labels: labels)
    }

    mutating func stringDictionary() throws(Bail) -> [String: String] {
        var dict: [String: String] = [:]
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            let value = try r.string()
            guard dict.updateValue(value, forKey: k.string) == nil else { throw Bail() }
        }
        return dict
    }

    mutating func probe() throws(Bail) -> ProbeResult {
        var seen = Seen()
        var endpoint: Endpoint?, errorClass: ErrorClass?, checkedAt: Date?
        var detail = "", phases = PhaseTimings()
        var tls: TLSState?, rateLimit: RateLimitState?, manifest: ManifestState?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("endpoint") {
                try seen.mark(0)
                endpoint = try r.endpoint()
            } else if k.is("class") {
                try seen.mark(1)
                errorClass = ErrorClass(rawValue: try r.string()) ?? .unknown
            } else if k.is("checkedAt") {
                try seen.mark(2)
                checkedAt = try r.date()
            } else if k.is("detail") {
                try seen.mark(3)
                if try !r.null() { detail = try r.string() }
            } else if k.is("phases") {
                try seen.mark(4)
                if try !r.null() { phases = try r.phases() }
            } else if k.is("tls") {
                try seen.mark(5)
                if try !r.null() { tls = try r.tls() }
            } else if k.is("rateLimit") {
                try seen.mark(6)
                if try !r.null() { rateLimit = try r.rateLimit() }
            } else if k.is("manifest") {
                try seen.mark(7)
                if try !r.null() { manifest = try r.manifest() }
            } else {
                try r.skipValue()
            }
        }
        guard let endpoint, let errorClass, let checkedAt else { throw Bail() }
        return ProbeResult(endpoint: endpoint, errorClass: errorClass, detail: detail, phases: phases,
                           tls: tls, rateLimit: rateLimit, manifest: manifest, checkedAt: checkedAt)
    }

    mutating func endpoint() throws(Bail) -> Endpoint {
        var seen = Seen()
        var registry: String?, url: String?, role: Endpoint.Role?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("registry") { try seen.mark(0); registry = try r.string() }
            else if k.is("url") { try seen.mark(1); url = try r.string() }
            else if k.is("role") {
                try seen.mark(2)
                guard let value = Endpoint.Role(rawValue: try r.string()) else { throw Bail() }
                role = value
            } else { try r.skipValue() }
        }
        guard let registry, let url, let role else { throw Bail() }
        return Endpoint(registry: registry, url: url, role: role)
    }

    mutating func phases() throws(Bail) -> PhaseTimings {
        var seen = Seen()
        var p = PhaseTimings()
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("dnsMs") { try seen.mark(0); p.dnsMs = try r.null() ? nil : try r.double() }
            else if k.is("connectMs") { try seen.mark(1); p.connectMs = try r.null() ? nil : try r.double() }
            else if k.is("tlsMs") { try seen.mark(2); p.tlsMs = try r.null() ? nil : try r.double() }
            else if k.is("ttfbMs") { try seen.mark(3); p.ttfbMs = try r.null() ? nil : try r.double() }
            else if k.is("totalMs") { try seen.mark(4); p.totalMs = try r.null() ? nil : try r.double() }
            else { try r.skipValue() }
        }
        return p
    }

    mutating func tls() throws(Bail) -> TLSState {
        var seen = Seen()
        var trusted: Bool?, daysLeft: Int?, expiresAt: Date?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("trusted") { try seen.mark(0); trusted = try r.bool() }
            else if k.is("daysLeft") { try seen.mark(1); daysLeft = try r.null() ? nil : try r.int() }
            else if k.is("expiresAt") { try seen.mark(2); expiresAt = try r.null() ? nil : try r.date() }
            else { try r.skipValue() }
        }
        guard let trusted else { throw Bail() }
        return TLSState(trusted: trusted, daysLeft: daysLeft, expiresAt: expiresAt)
    }

    mutating func rateLimit() throws(Bail) -> RateLimitState {
        var seen = Seen()
        var limit: Int?, remaining: Int?, window: Int?, source: String?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("limit") { try seen.mark(0); limit = try r.int() }
            else if k.is("remaining") { try seen.mark(1); remaining = try r.int() }
            else if k.is("windowSeconds") { try seen.mark(2); window = try r.int() }
            else if k.is("source") { try seen.mark(3); source = try r.null() ? nil : try r.string() }
            else { try r.skipValue() }
        }
        guard let limit, let remaining, let window else { throw Bail() }
        return RateLimitState(limit: limit, remaining: remaining, windowSeconds: window, source: source)
    }

    mutating func manifest() throws(Bail) -> ManifestState {
        var seen = Seen()
        var reference: String?, status: Int?, digest: String?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("reference") { try seen.mark(0); reference = try r.string() }
            else if k.is("status") { try seen.mark(1); status = try r.null() ? nil : try r.int() }
            else if k.is("digest") { try seen.mark(2); digest = try r.null() ? nil : try r.string() }
            else { try r.skipValue() }
        }
        guard let reference else { throw Bail() }
        return ManifestState(reference: reference, status: status, digest: digest)
    }

    mutating func runtime() throws(Bail) -> RuntimeConfigState {
        var seen = Seen()
        var kind: RuntimeKind?, valid: Bool?
        var mirrors: [String: [String]] = [:], detail = "", hash = ""
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("runtime") {
                try seen.mark(0)
                guard let value = RuntimeKind(rawValue: try r.string()) else { throw Bail() }
                kind = value
            } else if k.is("mirrors") {
                try seen.mark(1)
                if try !r.null() {
                    try r.object { (r: inout JSONReader, k: Key) throws(Bail) in
                        let name = k.string
                        var urls: [String] = []
                        try r.array { (r: inout JSONReader) throws(Bail) in urls.append(try r.string()) }
                        guard mirrors.updateValue(urls, forKey: name) == nil else { throw Bail() }
                    }
                }
            } else if k.is("valid") {
                try seen.mark(2)
                valid = try r.bool()
            } else if k.is("detail") {
                try seen.mark(3)
                if try !r.null() { detail = try r.string() }
            } else if k.is("hash") {
                try seen.mark(4)
                if try !r.null() { hash = try r.string() }
            } else {
                try r.skipValue()
            }
        }
        guard let kind, let valid else { throw Bail() }
        return RuntimeConfigState(runtime: kind, mirrors: mirrors, valid: valid, detail: detail, hash: hash)
    }

    /// `MirrorSpec` accepts a bare URL string or the object form.
    mutating func mirrorSpec() throws(Bail) -> MirrorSpec {
        if try peek() == UInt8(ascii: "\"") { return MirrorSpec(url: try string()) }
        var seen = Seen()
        var url: String?, trusted = false, authenticated = false, insecure = false
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("url") { try seen.mark(0); url = try r.string() }
            else if k.is("trusted") { try seen.mark(1); if try !r.null() { trusted = try r.bool() } }
            else if k.is("authenticated") { try seen.mark(2); if try !r.null() { authenticated = try r.bool() } }
            else if k.is("insecure") { try seen.mark(3); if try !r.null() { insecure = try r.bool() } }
            else { try r.skipValue() }
        }
        guard let url else { throw Bail() }
        return MirrorSpec(url: url, trusted: trusted, authenticated: authenticated, insecure: insecure)
    }

    mutating func eventSource() throws(Bail) -> EventSourceStatus {
        var seen = Seen()
        var name: String?, state: EventSourceStatus.State?, detail: String?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("name") { try seen.mark(0); name = try r.string() }
            else if k.is("state") { try seen.mark(1); state = EventSourceStatus.State(rawValue: try r.string()) ?? .unknown }
            else if k.is("detail") { try seen.mark(2); detail = try r.string() }
            else { try r.skipValue() }
        }
        guard let name, let state, let detail else { throw Bail() }
        return EventSourceStatus(name: name, state: state, detail: detail)
    }

    mutating func spoolStatus() throws(Bail) -> SpoolStatus {
        var seen = Seen()
        var pending: Int?, dropped: Int?
        try object { (r: inout JSONReader, k: Key) throws(Bail) in
            if k.is("pending") { try seen.mark(0); pending = try r.int() }
            else if k.is("dropped") { try seen.mark(1); dropped = try r.int() }
            else { try r.skipValue() }
        }
        guard let pending, let dropped else { throw Bail() }
        return SpoolStatus(pending: pending, dropped: dropped)
    }
}

extension JSONReader.Key {
    /// The key as a String (dictionary keys); keys are plain ASCII here.
    var string: String { String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self) }
}
