/// The few text operations regwatch needs from Foundation's `NSString` heritage, written on the standard
/// library so the agent does not load full Foundation.
extension StringProtocol {
    /// Without whitespace or line breaks at either end.
    public func trimmed() -> String {
        trimming { $0.properties.isWhitespace }
    }

    /// Without spaces and tabs at either end; line breaks stay.
    public func trimmingSpaces() -> String {
        trimming { $0.properties.isWhitespace && !Self.isLineBreak($0) }
    }

    /// Where `other` occurs last.
    public func lastRange(of other: some StringProtocol) -> Range<Index>? {
        var found: Range<Index>?
        var rest = self[...]
        while let r = rest.firstRange(of: other) {
            found = r
            guard r.lowerBound < rest.endIndex else { break }
            rest = self[index(after: r.lowerBound)...]
        }
        return found
    }

    private func trimming(_ drop: (Unicode.Scalar) -> Bool) -> String {
        let scalars = Array(unicodeScalars)
        guard let start = scalars.firstIndex(where: { !drop($0) }), let end = scalars.lastIndex(where: { !drop($0) }) else {
            return ""
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[start...end])
        return String(out)
    }

    private static func isLineBreak(_ s: Unicode.Scalar) -> Bool {
        (0x0A...0x0D).contains(s.value) || s.value == 0x85 || s.value == 0x2028 || s.value == 0x2029
    }
}

/// Numbers with a fixed count of decimals, as `printf("%.Nf")` writes them.
public enum DecimalText {
    public static func fixed(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return "\(value)" }
        let whole = Int64(scaled)
        let factor = Int64(scale)
        let sign = value < 0 && whole != 0 ? "-" : ""
        guard places > 0 else { return "\(sign)\(whole)" }
        let fraction = String(whole % factor)
        return "\(sign)\(whole / factor).\(String(repeating: "0", count: places - fraction.count))\(fraction)"
    }
}

extension StringProtocol {
    /// `%XX` sequences decoded; nil when one is malformed or the result is not UTF-8.
    public func percentDecoded() -> String? {
        var out: [UInt8] = []
        var bytes = utf8.makeIterator()
        while let b = bytes.next() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard let h = bytes.next(), let l = bytes.next(), let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else {
                return nil
            }
            out.append(v)
        }
        return String(validating: out, as: UTF8.self)
    }
}
