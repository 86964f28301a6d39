import FoundationEssentials

/// `Environment=` assignments of a unit's drop-ins (`/etc/systemd/system/docker.service.d/*.conf`), where
/// operators put `HTTP_PROXY` for dockerd and containerd. Quoting as systemd.exec(5) has it: each word is
/// one `NAME=value`, double or single quotes group a word; a later assignment wins; an empty
/// `Environment=` resets the list.
public enum SystemdEnvironment {
    /// `onto`: what earlier drop-ins set (an empty `Environment=` here resets it too).
    public static func parse(_ text: String, onto initial: [String: String] = [:]) -> [String: String] {
        var env = initial
        var section = ""
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingSpaces()
            if line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
            if line.hasPrefix("[") { section = String(line); continue }
            guard section == "[Service]", let eq = line.firstIndex(of: "="), line[..<eq].trimmingSpaces() == "Environment" else { continue }
            let words = Self.words(String(line[line.index(after: eq)...]))
            if words.isEmpty { env = [:]; continue }
            for w in words {
                guard let e = w.firstIndex(of: "="), e != w.startIndex else { continue }
                env[String(w[..<e])] = String(w[w.index(after: e)...])
            }
        }
        return env
    }

    static func words(_ s: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        var chars = s.makeIterator()
        while let c = chars.next() {
            if let q = quote {
                if c == q { quote = nil } else if c == "\\", q == "\"", let n = chars.next() { current.append(n) } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { out.append(current); current = ""; inWord = false }
            } else {
                current.append(c)
                inWord = true
            }
        }
        if inWord { out.append(current) }
        return out
    }
}
