import FoundationEssentials

/// Rewrites the mirrors of one `[[registry]]` block in a CRI-O/podman `registries.conf` (v2) and leaves
/// every other line of the file as it was.
///
/// The block is the one whose `prefix` (or `location`, when it has no prefix) is the registry; its
/// `[[registry.mirror]]` tables are replaced by the new order, written at the end of the block. When no
/// block exists, one is appended. Locations are written the way registries.conf wants them (host[:port],
/// no scheme) with `insecure = true` for plain-http mirrors. The result is parsed back with the same
/// reader `check` uses: the target's mirrors must read as written and every other block must read as
/// before, or nothing is returned.
public enum RegistriesConfEditor {
    public struct Mirror: Sendable, Equatable {
        public var url: String
        public var insecure: Bool
        public init(url: String, insecure: Bool) {
            self.url = url
            self.insecure = insecure
        }

        /// `https://mirror-a:5000/` -> `mirror-a:5000`.
        var location: String {
            var s = url
            if let r = s.firstRange(of: "://") { s = String(s[r.upperBound...]) }
            while s.hasSuffix("/") { s.removeLast() }
            return s
        }
    }

    public static func setMirrors(_ mirrors: [Mirror], registry: String, upstream: String, in text: String, path: String) throws(RuntimeConfigError) -> String {
        let before = try CRIORegistries.parse(text, path: path)
        var lines = text.components(separatedBy: "\n")
        let blocks = registryBlocks(lines)
        let rendered = mirrors.flatMap { m -> [String] in
            ["[[registry.mirror]]", "location = \(quote(m.location))"] + (m.insecure ? ["insecure = true"] : []) + [""]
        }
        if let block = blocks.first(where: { $0.prefix == registry }) {
            // Drop the block's mirror tables (header through the line before the next table header).
            var kept: [String] = []
            var i = block.range.lowerBound
            var inMirror = false
            while i < block.range.upperBound {
                let t = lines[i].trimmingSpaces()
                if t.hasPrefix("[") { inMirror = t.replacing(" ", with: "") == "[[registry.mirror]]" }
                if !inMirror { kept.append(lines[i]) }
                i += 1
            }
            while let last = kept.last, last.trimmingSpaces().isEmpty { kept.removeLast() }
            let tail = block.range.upperBound < lines.count ? [""] : []
            lines.replaceSubrange(block.range, with: kept + [""] + rendered.dropLast() + tail)
        } else {
            while let last = lines.last, last.trimmingSpaces().isEmpty { lines.removeLast() }
            var host = upstream
            if let r = host.firstRange(of: "://") { host = String(host[r.upperBound...]) }
            while host.hasSuffix("/") { host.removeLast() }
            lines += ["", "# Added by regwatch-agent: mirror order for \(registry).", "[[registry]]", "prefix = \(quote(registry))",
                      "location = \(quote(host))", ""] + rendered
        }
        var out = lines.joined(separator: "\n")
        if !out.hasSuffix("\n") { out += "\n" }

        let after = try CRIORegistries.parse(out, path: path)
        let target = after.registries.first { $0.prefix == registry }
        guard let target, target.mirrors.map(\.location) == mirrors.map(\.location), target.mirrors.map(\.insecure) == mirrors.map(\.insecure),
              after.registries.filter({ $0.prefix != registry }) == before.registries.filter({ $0.prefix != registry }),
              after.unqualifiedSearchRegistries == before.unqualifiedSearchRegistries else {
            throw RuntimeConfigError(path: path, message: "internal error: registries.conf did not read back as intended; not writing it")
        }
        return out
    }

    /// `[[registry]]` blocks: their line range (header up to the next `[[registry]]` or non-mirror table)
    /// and their prefix (or location).
    static func registryBlocks(_ lines: [String]) -> [(range: Range<Int>, prefix: String)] {
        var blocks: [(Range<Int>, String)] = []
        var start: Int?
        var prefix: String?, location: String?
        func close(_ end: Int) {
            if let s = start, let p = prefix ?? location { blocks.append((s..<end, p)) }
            start = nil; prefix = nil; location = nil
        }
        for (i, raw) in lines.enumerated() {
            let t = raw.trimmingSpaces()
            let header = t.replacing(" ", with: "")
            if header.hasPrefix("[") {
                if header == "[[registry.mirror]]" { continue }
                close(i)
                if header == "[[registry]]" { start = i }
                continue
            }
            guard start != nil, let eq = t.firstIndex(of: "=") else { continue }
            let key = t[..<eq].trimmingSpaces()
            let value = t[t.index(after: eq)...].trimmingSpaces()
            // Only the block's own keys: those before its first mirror table.
            if key == "prefix" && prefix == nil && !inMirror(lines, before: i, from: start!) { prefix = unquote(value) }
            if key == "location" && location == nil && !inMirror(lines, before: i, from: start!) { location = unquote(value) }
        }
        close(lines.count)
        // Trailing blank lines belong to the gap, not to the block.
        return blocks.map { b in
            var end = b.0.upperBound
            while end > b.0.lowerBound + 1, lines[end - 1].trimmingSpaces().isEmpty { end -= 1 }
            return (b.0.lowerBound..<end, b.1)
        }
    }

    static func inMirror(_ lines: [String], before i: Int, from start: Int) -> Bool {
        lines[(start + 1)..<i].contains { $0.trimmingSpaces().replacing(" ", with: "") == "[[registry.mirror]]" }
    }

    static func unquote(_ v: String) -> String {
        var s = v
        if let hash = s.firstRange(of: " #") { s = String(s[..<hash.lowerBound]) }
        s = s.trimmingSpaces()
        if (s.hasPrefix("\"") && s.hasSuffix("\"")) || (s.hasPrefix("'") && s.hasSuffix("'")), s.count >= 2 { s = String(s.dropFirst().dropLast()) }
        return s
    }

    static func quote(_ s: String) -> String {
        "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}
