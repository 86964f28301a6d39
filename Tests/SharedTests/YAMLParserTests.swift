import Foundation
@testable import RegwatchShared
import RegwatchTestSupport
import Testing

/// regwatch reads YAML with its own parser; PyYAML (what operators' tooling uses) is the reference.
@Suite("YAML reader")
struct YAMLParserTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/yaml").path

    /// A document as plain data, so two readers' results compare with `==`.
    indirect enum Plain: Equatable, Decodable, CustomStringConvertible {
        case null, bool(Bool), number(Double), string(String), array([Plain]), object([String: Plain])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else if let a = try? c.decode([Plain].self) { self = .array(a) }
            else { self = .object(try c.decode([String: Plain].self)) }
        }

        /// Our node, typed with YAML 1.1's rules as PyYAML applies them.
        init(_ node: YAMLNode?) {
            guard let node else { self = .null; return }
            switch node.kind {
            case .mapping(let entries): self = .object(Dictionary(uniqueKeysWithValues: entries.map { ($0.key, Plain($0.value)) }))
            case .sequence(let items): self = .array(items.map { Plain($0) })
            case .scalar(let text, quoted: true): self = .string(text)
            case .scalar(let text, quoted: false):
                if node.isNull { self = .null }
                else if let b = node.bool { self = .bool(b) }
                else if let i = node.int { self = .number(Double(i)) }
                else if text.contains("."), let d = node.double { self = .number(d) }
                else { self = .string(text) }
            }
        }

        var description: String {
            switch self {
            case .null: "null"
            case .bool(let b): "\(b)"
            case .number(let n): "\(n)"
            case .string(let s): "\"\(s)\""
            case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
            case .object(let o): "{" + o.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
            }
        }
    }

    static func reference(_ path: String) throws -> Plain {
        let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1])), default=str))"
        let (status, out) = try RegistryHarness.spawnAndWait("/usr/bin/python3", ["-c", script, path])
        try #require(status == 0, "PyYAML could not read \(path)")
        return try JSONDecoder().decode(Plain.self, from: Data(out.utf8))
    }

    @Test("every fixture reads as PyYAML reads it", arguments: try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted())
    func matchesPyYAML(_ name: String) throws {
        let path = "\(Self.fixtures)/\(name)"
        let ours = Plain(try YAMLParser.parse(String(contentsOfFile: path, encoding: .utf8)))
        #expect(ours == (try Self.reference(path)))
    }

    @Test("lines: each node and key knows the line it starts on")
    func lines() throws {
        let root = try #require(try YAMLParser.parse("# c\na:\n  b: 1\n  list:\n    - x\n    - {y: 2}\nc: |\n  text\n"))
        #expect(root.line == 2)
        #expect(root["a"]?["b"]?.line == 3)
        #expect(root["a"]?.mapping?.last?.keyLine == 4)
        #expect(root["a"]?["list"]?.sequence?.map(\.line) == [5, 6])
        #expect(root["c"]?.line == 7)
    }

    /// Found by fuzzing (FuzzAgentConfig): only LF ended a line, so a CRLF file was one line and a lone CR
    /// (which PyYAML breaks on) stayed inside a plain value.
    @Test("CRLF and lone CR end lines as LF does")
    func lineBreaks() throws {
        let crlf = try #require(try YAMLParser.parse("a: 1\r\nb:\r\n  - x\r\n"))
        #expect(crlf["a"]?.int == 1 && crlf["b"]?.sequence?.first?.scalar == "x")
        #expect(crlf.mapping?.map(\.keyLine) == [1, 2])
        let cr = try #require(try YAMLParser.parse("openAfter: 2        \r        # windows\nminHosts: 3\n"))
        #expect(cr["openAfter"]?.int == 2 && cr.mapping?.map(\.keyLine) == [1, 3])
    }

    /// Found by fuzzing (FuzzAgentConfig): a quote after `,` or a space opened a string inside a plain value,
    /// so `#` after it was kept, and whether it was depended on how many quotes came before.
    @Test("in a plain value a quote is a plain character and a comment still ends it")
    func plainQuotes() throws {
        let node = try #require(try YAMLParser.parse("a: x,\"y #c\nb: p \"q\" # c\nc: [\"z # not a comment\", 'w']  # c\nd: t,'u\n  v\" #c\n"))
        #expect(node["a"]?.scalar == "x,\"y")
        #expect(node["b"]?.scalar == "p \"q\"")
        #expect(node["c"]?.sequence?.compactMap(\.scalar) == ["z # not a comment", "w"])
        #expect(node["d"]?.scalar == "t,'u v\"")
    }

    /// Found by fuzzing (FuzzAgentConfig): in a flow collection a quote in the middle of a plain value opened a
    /// string, so the comment after it was kept and the collection was read as unterminated or too long.
    @Test("in a flow collection a quote inside a plain value is plain too, and a comment still ends the line")
    func flowPlainQuotes() throws {
        let node = try #require(try YAMLParser.parse("a: [x \"y # c\n  , 'z']\nb: {k: p 'q # c\n  }\nc: [\"s, t\", u'v]\n"))
        #expect(node["a"]?.sequence?.compactMap(\.scalar) == ["x \"y", "z"])
        #expect(node["b"]?["k"]?.scalar == "p 'q")
        #expect(node["c"]?.sequence?.compactMap(\.scalar) == ["s, t", "u'v"])
        // Written back by the emitter (k3s failover), the values read the same.
        let again = try #require(try YAMLParser.parse(YAMLEmitter.emit(node)))
        #expect(again["a"]?.sequence?.compactMap(\.scalar) == ["x \"y", "z"])
        #expect(again["b"]?["k"]?.scalar == "p 'q")
        #expect(again["c"]?.sequence?.compactMap(\.scalar) == ["s, t", "u'v"])
    }

    /// Found by fuzzing (FuzzAgentConfig): a document that is the plain scalar `---` (written indented) was
    /// written back at the start of a line, where it is a document marker.
    @Test("a plain scalar that looks like a document marker is written so that it reads back")
    func documentMarkerScalar() throws {
        for text in [" ---\n", " ...\n", " --- x\n"] {
            let node = try #require(try YAMLParser.parse(text))
            let again = try #require(try YAMLParser.parse(YAMLEmitter.emit(node)), "\(text.debugDescription)")
            #expect(again.sameContent(as: node), "\(text.debugDescription)")
        }
    }

    /// Found by fuzzing (FuzzAgentConfig): `?` then a tab was read as a plain `?`, which written back is a
    /// complex key the reader refuses.
    @Test("a complex key is refused whether a space, a tab or the end of the line follows the ?")
    func complexKeyWithTab() throws {
        for text in ["? a: b\n", "?\ta: b\n", "?\t\n", "?\n"] {
            #expect(throws: YAMLError.self, "\(text.debugDescription)") { try YAMLParser.parse(text) }
        }
        #expect(try YAMLParser.parse("?a: b\n")?["?a"]?.scalar == "b")
    }

    /// Found by fuzzing (FuzzAgentConfig): continuation lines were stripped of comments one by one, so a quote
    /// at the start of one opened a string even inside a plain value of the line before, and kept its comment.
    @Test("a flow collection over several lines is read as one: what a line leaves open holds on the next")
    func flowAcrossLines() throws {
        let node = try #require(try YAMLParser.parse("a: [x y\n  'z # c\n  , \"q # r\n  s\", 'it''s # t']\n"))
        #expect(node["a"]?.sequence?.compactMap(\.scalar) == ["x y 'z", "q # r s", "it's # t"])
        let again = try #require(try YAMLParser.parse(YAMLEmitter.emit(node)))
        #expect(again["a"]?.sequence?.compactMap(\.scalar) == ["x y 'z", "q # r s", "it's # t"])
    }

    /// Found by fuzzing (FuzzAgentConfig): the reader worked on Characters, and a combining mark joins the
    /// space, quote or colon before it into one. `key: \u{059A}x` then held no `: `, and `"\u{301}x"` no
    /// opening quote. It reads Unicode scalars now, as YAML is defined.
    @Test("a combining mark after a space, quote, colon or dash is read as the mark it is, and written back as is")
    func combiningMarks() throws {
        let node = YAMLNode(.mapping([
            .init(key: "\u{059A}runtime", keyLine: 1, value: YAMLNode(.scalar("\"\u{301}x\u{200D}\u{1D167}", quoted: true), line: 1)),
            .init(key: "plain", keyLine: 2, value: YAMLNode(.scalar("\u{059A}v", quoted: false), line: 2)),
        ]), line: 1)
        let text = YAMLEmitter.emit(node)
        #expect(text == "\"\u{059A}runtime\": \"\\\"\u{301}x\u{200D}\u{1D167}\"\nplain: \u{059A}v\n")
        #expect(try #require(try YAMLParser.parse(text)).sameContent(as: node))

        let read = try #require(try YAMLParser.parse("a: \u{301}x\nb: \"\u{301}y\" # c\nc:\n  - \u{301}z\n  - -\u{301}w\nd: [\u{301}p, '\u{301}q']\n"))
        #expect(read["a"]?.kind == .scalar("\u{301}x", quoted: false))
        #expect(read["b"]?.kind == .scalar("\u{301}y", quoted: true))
        #expect(read["c"]?.sequence?.compactMap(\.scalar) == ["\u{301}z", "-\u{301}w"])
        #expect(read["d"]?.sequence?.compactMap(\.scalar) == ["\u{301}p", "\u{301}q"])
        // A mark after the indentation's last space does not take that space out of the indentation.
        #expect(try YAMLParser.parse("a:\n  b: 1\n  \u{301}c: 2\n")?["a"]?["\u{301}c"]?.int == 2)
    }

    @Test("flow values that merely look like indicators stay plain")
    func flowPlainLookalikes() throws {
        let node = try #require(try YAMLParser.parse("a: [-1, -x, ?x, a#b, x@y]\n"))
        #expect(node["a"]?.sequence?.compactMap(\.scalar) == ["-1", "-x", "?x", "a#b", "x@y"])
    }

    @Test("typed scalars: booleans, integers, numbers; quoted values stay strings")
    func scalars() throws {
        let root = try #require(try YAMLParser.parse("a: 0x1F\nb: 0o17\nc: 1_000\nd: 1e3\ne: \"true\"\nf: off\ng: -7\n"))
        #expect(root["a"]?.int == 31)
        #expect(root["b"]?.int == 15)
        #expect(root["c"]?.int == 1000)
        #expect(root["d"]?.double == 1000)
        #expect(root["e"]?.kind == .scalar("true", quoted: true))
        #expect(root["f"]?.bool == false)
        #expect(root["g"]?.int == -7)
        #expect(try YAMLParser.parse("") == nil)
        #expect(try YAMLParser.parse("---\n# nothing\n...\n") == nil)
    }

    @Test("what it refuses, with the line", arguments: [
        ("a:\n\tb: 1\n", 2, "tab"),
        ("a: 1\na: 2\n", 2, "duplicate key \"a\""),
        ("a: {x: 1, x: 2}\n", 1, "duplicate key \"x\""),
        ("a: &anchor 1\nb: *anchor\n", 1, "anchors"),
        ("a: !!str 1\n", 1, "tags"),
        ("a: 1\n---\nb: 2\n", 2, "several documents"),
        ("a: \"open\n", 1, "unterminated quoted string"),
        ("a: [1, 2\n", 1, "unterminated ["),
        ("a:\n  b: 1\n c: 2\n", 3, "unexpected indentation"),
        ("a: 1\n  b: 2\n", 2, "unexpected indentation"),
        ("a: b: c\n", 1, "cannot contain \": \""),
        ("- a\nb: 1\n", 2, "expected"),
        ("a: \"\\q\"\n", 1, "unknown escape"),
        ("? complex\n: value\n", 1, "complex keys"),
        // Found by fuzzing (FuzzAgentConfig): in { } and [ ] these were plain values, which the emitter wrote
        // back as a refused value, a comment, a nested list or a block scalar.
        ("keys: {dir: @tmp}\n", 1, "cannot start with \"@\""),
        ("a: [x,#y]\n", 1, "cannot start with \"#\""),
        ("a: [- y]\n", 1, "cannot start with \"-\""),
        ("a: {b: |}\n", 1, "cannot start with \"|\""),
        ("a: {? b}\n", 1, "cannot start with \"?\""),
    ] as [(String, Int, String)])
    func refuses(_ text: String, _ line: Int, _ problem: String) {
        do {
            let node = try YAMLParser.parse(text)
            Issue.record("accepted: \(String(describing: node))")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.problem.contains(problem), "\(error.problem)")
        }
    }
}
