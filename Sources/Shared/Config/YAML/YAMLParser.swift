/// Reads the YAML that configuration files are written in: block mappings and lists by indentation, flow
/// `{…}` and `[…]`, plain, quoted and block (`|`, `>`) scalars, comments, one document.
///
/// Anchors, aliases, tags and complex keys are refused with a line that says so, rather than half-supported:
/// a config must mean what it reads. Having our own reader keeps the agent free of Foundation (a YAML
/// library on libyaml needs it), which is most of the agent's resident memory otherwise.
///
/// It reads Unicode scalars, as YAML is defined, not Characters: a combining mark after a space, quote or
/// colon joins it into one Character, which then no longer reads as the space or quote it is (found by
/// fuzzing, FuzzAgentConfig).
public struct YAMLParser {
    typealias Scalars = ArraySlice<Unicode.Scalar>

    struct Line {
        /// Leading spaces.
        var indent: Int
        /// The text after them.
        var text: Scalars
        var number: Int

        var isSignificant: Bool {
            let t = text.drop { $0 == " " || $0 == "\t" }
            return !t.isEmpty && t.first != "#"
        }
    }

    private var lines: [Line]
    private var i = 0

    /// The document's root; nil for an empty document (only comments or nothing).
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode? {
        var parser = YAMLParser(text)
        return try parser.document()
    }

    private init(_ text: String) {
        let scalars = Array(text.unicodeScalars)
        var out: [Line] = []
        // YAML's line breaks: LF, CRLF and a lone CR, which PyYAML and Go's yaml break lines on too. Found by
        // fuzzing (FuzzAgentConfig).
        var start = 0
        var index = 0
        while index <= scalars.count {
            guard index == scalars.count || scalars[index] == "\n" || scalars[index] == "\r" else { index += 1; continue }
            let line = scalars[start..<index]
            let indent = line.prefix { $0 == " " }.count
            out.append(Line(indent: indent, text: line.dropFirst(indent), number: out.count + 1))
            if index < scalars.count, scalars[index] == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" { index += 1 }
            index += 1
            start = index
        }
        lines = out
    }

    // MARK: Structure

    private mutating func document() throws(YAMLError) -> YAMLNode? {
        skipInsignificant()
        while let l = current, l.indent == 0, l.text.first == "%" { i += 1; skipInsignificant() }
        if let l = current, l.indent == 0, isMarker(l.text, "---") {
            guard Self.stripComment(l.text.dropFirst(3)).isEmpty else {
                throw YAMLError(line: l.number, "content on the --- line is not supported; start it on the next line")
            }
            i += 1
        }
        let root = try block(parentIndent: -1)
        skipInsignificant()
        if let l = current, l.indent == 0, isMarker(l.text, "...") { i += 1; skipInsignificant() }
        if let l = current {
            if l.indent == 0, isMarker(l.text, "---") { throw YAMLError(line: l.number, "several documents in one file") }
            throw YAMLError(line: l.number, "unexpected indentation")
        }
        return root
    }

    private func isMarker(_ text: Scalars, _ marker: String) -> Bool {
        text.starts(with: marker.unicodeScalars) && (text.count == 3 || text.dropFirst(3).first == " " || text.dropFirst(3).first == "\t")
    }

    private var current: Line? { i < lines.count ? lines[i] : nil }

    /// `---` or `...` at the margin: the document ends there.
    private func isDocumentMarker(_ l: Line) -> Bool {
        l.indent == 0 && (isMarker(l.text, "---") || isMarker(l.text, "..."))
    }

    private mutating func skipInsignificant() {
        while i < lines.count, !lines[i].isSignificant { i += 1 }
    }

    /// The next significant line, positioned at.
    private mutating func peek() -> Line? {
        skipInsignificant()
        return current
    }

    /// A node whose lines are indented more than `parentIndent`; nil when there is none.
    private mutating func block(parentIndent: Int) throws(YAMLError) -> YAMLNode? {
        guard let l = peek(), l.indent > parentIndent, !isDocumentMarker(l) else { return nil }
        if l.text.first == "\t" { throw YAMLError(line: l.number, "a tab in the indentation (YAML indents with spaces)") }
        if Self.isListItem(l.text) { return try sequence(indent: l.indent) }
        if try Self.splitKey(l.text, line: l.number) != nil { return try mapping(indent: l.indent) }
        i += 1
        return try inlineValue(Self.stripComment(l.text), line: l.number, parentIndent: parentIndent)
    }

    static func isListItem(_ text: Scalars) -> Bool {
        text.first == "-" && (text.count == 1 || text.dropFirst().first == " " || text.dropFirst().first == "\t")
    }

    private mutating func sequence(indent: Int) throws(YAMLError) -> YAMLNode {
        var items: [YAMLNode] = []
        let start = lines[i].number
        while let l = peek(), l.indent >= indent, !isDocumentMarker(l) {
            guard l.indent == indent else { throw YAMLError(line: l.number, "unexpected indentation") }
            guard Self.isListItem(l.text) else { break }
            let afterDash = l.text.dropFirst()
            let gap = afterDash.prefix { $0 == " " }.count
            let rest = afterDash.dropFirst(gap)
            if rest.isEmpty || rest.first == "#" {
                i += 1
                items.append(try block(parentIndent: indent) ?? .null(line: l.number))
            } else {
                if rest.first == "\t" { throw YAMLError(line: l.number, "a tab after \"-\" (YAML indents with spaces)") }
                // The item's text is read as a line of its own at its column: `- name: a` opens a mapping
                // whose further keys line up under `name`.
                lines[i] = Line(indent: indent + 1 + gap, text: rest, number: l.number)
                items.append(try block(parentIndent: indent) ?? .null(line: l.number))
            }
        }
        return YAMLNode(.sequence(items), line: start)
    }

    private mutating func mapping(indent: Int) throws(YAMLError) -> YAMLNode {
        var entries: [YAMLNode.Entry] = []
        let start = lines[i].number
        while let l = peek(), l.indent >= indent, !isDocumentMarker(l) {
            guard l.indent == indent else { throw YAMLError(line: l.number, "unexpected indentation") }
            if l.text.first == "\t" { throw YAMLError(line: l.number, "a tab in the indentation (YAML indents with spaces)") }
            if Self.isListItem(l.text) { throw YAMLError(line: l.number, "a list item where a key was expected") }
            guard let (key, after) = try Self.splitKey(l.text, line: l.number) else {
                throw YAMLError(line: l.number, "expected \"key: value\"")
            }
            if entries.contains(where: { $0.key == key }) { throw YAMLError(line: l.number, "duplicate key \"\(key)\"") }
            i += 1
            let valueText = Self.stripComment(after)
            let value: YAMLNode
            if valueText.isEmpty {
                if let n = peek(), n.indent > indent {
                    value = try block(parentIndent: indent) ?? .null(line: l.number)
                } else if let n = peek(), n.indent == indent, Self.isListItem(n.text) {
                    value = try sequence(indent: indent)
                } else {
                    value = .null(line: l.number)
                }
            } else {
                value = try inlineValue(valueText, line: l.number, parentIndent: indent)
            }
            entries.append(YAMLNode.Entry(key: key, keyLine: l.number, value: value))
        }
        return YAMLNode(.mapping(entries), line: start)
    }

    /// `key: rest` → (key, rest); nil when the line holds no key.
    static func splitKey(_ text: Scalars, line: Int) throws(YAMLError) -> (String, Scalars)? {
        // `?` then a space, a tab or the end of the line (a tab too: found by fuzzing, FuzzAgentConfig).
        if text.first == "?", text.dropFirst().first.map({ $0 == " " || $0 == "\t" }) ?? true {
            throw YAMLError(line: line, "complex keys (\"? \") are not supported")
        }
        if let q = text.first, q == "\"" || q == "'" {
            var reader = FlowReader(Array(text), line: line)
            guard let key = try? reader.quoted() else { return nil }
            reader.skipSpace()
            guard reader.peek == ":" else { return nil }
            reader.pos += 1
            guard reader.atEnd || reader.peek == " " || reader.peek == "\t" else { return nil }
            return (key, reader.chars[reader.pos...])
        }
        if text.first == "{" || text.first == "[" || text.first == "#" { return nil }
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            let next = text.index(after: index)
            if c == "#", index > text.startIndex, [" ", "\t"].contains(text[text.index(before: index)]) { return nil }
            if c == ":", next == text.endIndex || text[next] == " " || text[next] == "\t" {
                let key = string(trim(text[..<index]))
                if let first = key.unicodeScalars.first, "&*!|>%@`".unicodeScalars.contains(first) {
                    throw YAMLError(line: line, "anchors, aliases and tags are not supported (key \"\(key)\")")
                }
                return (key, text[next...])
            }
            index = next
        }
        return nil
    }

    /// A value written after `key:` or `-` (or alone on its line): block scalar, flow collection, quoted or
    /// plain scalar. `parentIndent` bounds the lines a multi-line value may take.
    private mutating func inlineValue(_ text: Scalars, line: Int, parentIndent: Int) throws(YAMLError) -> YAMLNode {
        guard let first = text.first else { return .null(line: line) }
        switch first {
        case "|", ">":
            return try blockScalar(header: text, line: line, parentIndent: parentIndent)
        case "[", "{", "\"", "'":
            var joined = Array(text)
            // One scan over the joined lines: whether a quote opens a string, and so whether a `#` starts a
            // comment, depends on what the lines before left open.
            var scan = FlowScan()
            _ = Self.scanFlow(text, &scan)
            while !scan.closed {
                guard i < lines.count else {
                    throw YAMLError(line: line, first == "\"" || first == "'" ? "unterminated quoted string" : "unterminated \(first == "[" ? "[" : "{")")
                }
                let next = lines[i]
                i += 1
                joined.append(" ")
                joined += Self.scanFlow(next.text, &scan)
            }
            var reader = FlowReader(joined, line: line)
            let node = try reader.value()
            reader.skipSpace()
            // Messages never quote the file's values: a runtime file's may be a password.
            guard reader.atEnd else { throw YAMLError(line: line, "unexpected text after a value") }
            return node
        case "&", "*", "!":
            throw YAMLError(line: line, "anchors, aliases and tags (\(first)) are not supported")
        case "%", "@", "`":
            throw YAMLError(line: line, "a plain value cannot start with \"\(first)\"; quote it")
        default:
            var value = Array(text)
            // A plain scalar continues on lines indented deeper than its parent.
            while let n = peek(), n.indent > parentIndent, !(parentIndent < 0 && n.indent == 0) {
                if try Self.splitKey(n.text, line: n.number) != nil || Self.isListItem(n.text) {
                    throw YAMLError(line: n.number, "unexpected indentation")
                }
                value.append(" ")
                value += Self.stripComment(n.text, flow: false)
                i += 1
            }
            if value.last == ":" || zip(value, value.dropFirst()).contains(where: { $0 == ":" && $1 == " " }) {
                throw YAMLError(line: line, "a plain value cannot contain \": \"; quote it")
            }
            return YAMLNode(.scalar(Self.string(value[...]), quoted: false), line: line)
        }
    }

    private mutating func blockScalar(header: Scalars, line: Int, parentIndent: Int) throws(YAMLError) -> YAMLNode {
        let literal = header.first == "|"
        var chomp: Unicode.Scalar = " "
        var explicit: Int?
        for c in Self.stripComment(header.dropFirst()) {
            if c == "-" || c == "+", chomp == " " { chomp = c }
            else if ("1"..."9").contains(c), explicit == nil { explicit = Int(c.value - 0x30) }
            else { throw YAMLError(line: line, "invalid block scalar header \"\(Self.string(header))\"") }
        }
        let base = max(parentIndent, 0)
        var contentIndent = explicit.map { base + $0 }
        var body: [String] = []
        while i < lines.count {
            let l = lines[i]
            let blank = l.text.allSatisfy { $0 == " " || $0 == "\t" }
            if blank { body.append(""); i += 1; continue }
            if contentIndent == nil { contentIndent = l.indent }
            guard let indent = contentIndent, l.indent >= indent, indent > parentIndent else { break }
            body.append(String(repeating: " ", count: l.indent - indent) + Self.string(l.text))
            i += 1
        }
        // Blank lines after the content belong to it only with "+".
        var trailing = 0
        while body.last == "" { body.removeLast(); trailing += 1 }
        var text: String
        if literal {
            text = body.joined(separator: "\n")
        } else {
            text = ""
            var previousBlank = true
            for l in body {
                if l.isEmpty { text += "\n"; previousBlank = true; continue }
                if !previousBlank, !text.hasSuffix("\n") { text += " " }
                text += l
                previousBlank = false
            }
        }
        switch chomp {
        case "-": break
        case "+": text += String(repeating: "\n", count: (body.isEmpty ? 0 : 1) + trailing)
        default: if !body.isEmpty { text += "\n" }
        }
        return YAMLNode(.scalar(text, quoted: true), line: line)
    }

    // MARK: Text

    /// Drops a ` #` comment outside quotes, and surrounding spaces.
    ///
    /// Quotes hide a `#` only in a value that is quoted or a flow collection (`flow`; by default, when the text
    /// starts with one). In a plain value a quote is a character like any other (`a,"b #c` is `a,"b`, as PyYAML
    /// reads it); it used to open a string there, so a comment was kept or not depending on the quotes before
    /// it on the line (found by fuzzing, FuzzAgentConfig).
    static func stripComment(_ text: Scalars, flow: Bool? = nil) -> Scalars {
        if !(flow ?? trim(text).first.map { "[{\"'".unicodeScalars.contains($0) } ?? false) {
            var previous: Unicode.Scalar = " "
            for index in text.indices {
                if text[index] == "#", previous == " " || previous == "\t" { return trim(text[..<index]) }
                previous = text[index]
            }
            return trim(text)
        }
        var scan = FlowScan()
        return scanFlow(text, &scan)
    }

    /// What a flow value's scan has left open at the end of a line.
    struct FlowScan {
        var quote: Unicode.Scalar?
        /// The last character other than a space outside quotes (the closing quote after a quoted
        /// scalar); nil at the start of the value.
        var significant: Unicode.Scalar?
        var depth = 0
        /// Every quote and bracket opened is closed.
        var closed: Bool { depth <= 0 && quote == nil }
    }

    /// Scans one line of a flow value from `state`, updating it, and returns the line without its ` #`
    /// comment (a `#` after a space outside quotes), trimmed.
    static func scanFlow(_ text: Scalars, _ state: inout FlowScan) -> Scalars {
        var previous: Unicode.Scalar = " "
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if let q = state.quote {
                if c == "\\", q == "\"" {
                    index = text.index(after: index)
                    if index < text.endIndex { index = text.index(after: index) }
                    previous = "x"
                    continue
                }
                if c == q {
                    let next = text.index(after: index)
                    if q == "'", next < text.endIndex, text[next] == "'" {
                        index = text.index(after: next)
                        continue
                    }
                    state.quote = nil
                    state.significant = c
                }
            } else if c == "#", previous == " " || previous == "\t" {
                return trim(text[..<index])
            } else if c == "\"" || c == "'", startsScalar(after: state.significant) {
                state.quote = c
            } else {
                if c == "[" || c == "{" { state.depth += 1 } else if c == "]" || c == "}" { state.depth -= 1 }
                if c != " " && c != "\t" { state.significant = c }
            }
            previous = c
            index = text.index(after: index)
        }
        return trim(text)
    }

    static func trim(_ text: Scalars) -> Scalars {
        var t = text
        while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
        while let l = t.last, l == " " || l == "\t" { t = t.dropLast() }
        return t
    }

    /// Whether a quote after `significant` (the last character other than a space before it; nil at the
    /// start) begins a quoted scalar: only at the start of a flow value. Inside a plain value a quote is a
    /// plain character (`[a "b # c]` holds `a "b`, as PyYAML reads it); found by fuzzing (FuzzAgentConfig).
    static func startsScalar(after significant: Unicode.Scalar?) -> Bool {
        significant.map { "[{,:".unicodeScalars.contains($0) } ?? true
    }

    static func string(_ scalars: Scalars) -> String {
        var out = ""
        out.unicodeScalars.append(contentsOf: scalars)
        return out
    }
}

/// Flow collections and quoted scalars, read scalar by scalar.
struct FlowReader {
    let chars: [Unicode.Scalar]
    var pos = 0
    let line: Int

    init(_ chars: [Unicode.Scalar], line: Int) {
        self.chars = chars
        self.line = line
    }

    var atEnd: Bool { pos >= chars.count }
    var peek: Unicode.Scalar? { atEnd ? nil : chars[pos] }

    mutating func skipSpace() {
        while let c = peek, c == " " || c == "\t" { pos += 1 }
    }

    mutating func value() throws(YAMLError) -> YAMLNode {
        skipSpace()
        switch peek {
        case "{": return try flowMapping()
        case "[": return try flowSequence()
        case "\"", "'": return YAMLNode(.scalar(try quoted(), quoted: true), line: line)
        default: return YAMLNode(.scalar(try plain(), quoted: false), line: line)
        }
    }

    private mutating func flowMapping() throws(YAMLError) -> YAMLNode {
        pos += 1
        var entries: [YAMLNode.Entry] = []
        while true {
            skipSpace()
            if peek == "}" { pos += 1; break }
            guard !atEnd else { throw YAMLError(line: line, "unterminated {") }
            let key: String
            if peek == "\"" || peek == "'" { key = try quoted() } else { key = try plain() }
            if key.isEmpty { throw YAMLError(line: line, "a key is missing in a { } mapping") }
            if entries.contains(where: { $0.key == key }) { throw YAMLError(line: line, "duplicate key \"\(key)\"") }
            skipSpace()
            var value = YAMLNode.null(line: line)
            if peek == ":" {
                pos += 1
                skipSpace()
                if peek != "," && peek != "}" { value = try self.value() }
            }
            entries.append(YAMLNode.Entry(key: key, keyLine: line, value: value))
            skipSpace()
            if peek == "," { pos += 1; continue }
            guard peek == "}" else { throw YAMLError(line: line, "expected \",\" or \"}\" in a { } mapping") }
        }
        return YAMLNode(.mapping(entries), line: line)
    }

    private mutating func flowSequence() throws(YAMLError) -> YAMLNode {
        pos += 1
        var items: [YAMLNode] = []
        while true {
            skipSpace()
            if peek == "]" { pos += 1; break }
            guard !atEnd else { throw YAMLError(line: line, "unterminated [") }
            items.append(try value())
            skipSpace()
            if peek == "," { pos += 1; continue }
            guard peek == "]" else { throw YAMLError(line: line, "expected \",\" or \"]\" in a [ ] list") }
        }
        return YAMLNode(.sequence(items), line: line)
    }

    /// A plain scalar inside a flow collection: up to `,`, `]`, `}` or `: `.
    private mutating func plain() throws(YAMLError) -> String {
        if let c = peek, "&*!".unicodeScalars.contains(c) { throw YAMLError(line: line, "anchors, aliases and tags are not supported") }
        // What YAML (and the block reader here) refuses to start a plain scalar with: taken in { } or [ ], such a
        // value was written back by YAMLEmitter as a comment, list item or block scalar (found by fuzzing).
        if let c = peek, "#|>%@`".unicodeScalars.contains(c) || ("-?:".unicodeScalars.contains(c) && (pos + 1 >= chars.count || " \t".unicodeScalars.contains(chars[pos + 1]))) {
            throw YAMLError(line: line, "a plain value cannot start with \"\(c)\"; quote it")
        }
        let start = pos
        while let c = peek {
            if c == "," || c == "]" || c == "}" || c == "[" || c == "{" { break }
            if c == ":", pos + 1 >= chars.count || " \t,]}".unicodeScalars.contains(chars[pos + 1]) { break }
            pos += 1
        }
        return YAMLParser.string(YAMLParser.trim(chars[start..<pos]))
    }

    mutating func quoted() throws(YAMLError) -> String {
        let q = chars[pos]
        pos += 1
        var out = ""
        while let c = peek {
            pos += 1
            if c == q {
                if q == "'", peek == "'" { out.append("'"); pos += 1; continue }
                return out
            }
            guard q == "\"", c == "\\" else { out.unicodeScalars.append(c); continue }
            guard let e = peek else { break }
            pos += 1
            switch e {
            case "n": out.append("\n")
            case "t", "\t": out.append("\t")
            case "r": out.append("\r")
            case "0": out.append("\0")
            case "\"", "\\", "/", " ": out.unicodeScalars.append(e)
            case "e": out.append("\u{1B}")
            case "x", "u", "U":
                let width = e == "x" ? 2 : e == "u" ? 4 : 8
                guard pos + width <= chars.count, let v = UInt32(YAMLParser.string(chars[pos..<pos + width]), radix: 16),
                      let scalar = Unicode.Scalar(v) else {
                    throw YAMLError(line: line, "invalid \\\(e) escape in a quoted string")
                }
                out.unicodeScalars.append(scalar)
                pos += width
            default: throw YAMLError(line: line, "unknown escape \\\(e) in a quoted string")
            }
        }
        throw YAMLError(line: line, "unterminated quoted string")
    }
}
