import RegwatchShared

/// JSON text built as UTF-8 bytes, for the ingest path's columns (``ProbeStateText``): appending to a
/// byte array is a copy, where appending to a `String` also updates its count and flags on every call,
/// which profiled as most of the cost of writing a report's columns.
struct JSONBytes {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    var string: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always)
    mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func raw(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    /// A quoted JSON string (`JSONText.appendQuoted`).
    mutating func quoted(_ s: String) { JSONText.appendQuoted(s, to: &bytes) }

    mutating func quoted(_ s: String?) {
        if let s { quoted(s) } else { raw("null") }
    }

    /// JSON has no infinities or NaN, so those are written as null like a missing value.
    ///
    /// Timings, counts and times have at most three decimals; those are written from integers (`96`,
    /// `2.1`, `1764000123.456`), which costs a tenth of `description`. Others take `description`, the
    /// shortest text that reads back as the same value.
    mutating func number(_ v: Double?) {
        guard let v, v.isFinite else { raw("null"); return }
        if v.magnitude < 1e12 {
            var scale = 1.0
            for decimals in 0...3 {
                let m = (v * scale).rounded()
                // m / scale is correctly rounded, so equality means the decimal text reads back as v.
                if m / scale == v {
                    decimal(Int64(m), decimals: decimals)
                    return
                }
                scale *= 10
            }
        }
        var text = v.description
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// `m` with a decimal point `decimals` digits from the right: (2466, 3) is `2.466`, (5, 2) is `0.05`.
    private mutating func decimal(_ m: Int64, decimals: Int) {
        if m < 0 { bytes.append(UInt8(ascii: "-")) }
        var u = m.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch: 19 digits, a point and a zero
        withUnsafeMutableBytes(of: &digits) { scratch in
            var n = 0
            repeat {
                if n == decimals && n > 0 {
                    scratch[23 - n] = UInt8(ascii: ".")
                    n += 1
                }
                scratch[23 - n] = UInt8(ascii: "0") + UInt8(u % 10)
                u /= 10
                n += 1
            } while u > 0 || n <= decimals
            bytes.append(contentsOf: scratch[(24 - n)...])
        }
    }

    mutating func number(_ v: Int?) {
        guard let v else { raw("null"); return }
        decimal(Int64(v), decimals: 0)
    }
}
