import Foundation
@testable import RegwatchAgent
import RegwatchTestSupport
import Testing

/// regwatch reads TOML with its own parser; Python's `tomllib` (a TOML 1.0 reference) is the reference.
@Suite("TOML reader")
struct TOMLParserTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/toml").path

    /// A document as plain data. Date-times compare by kind only (`tomllib` turns them into objects).
    indirect enum Plain: Equatable, Decodable {
        case dateTime, bool(Bool), number(Double), string(String), array([Plain]), object([String: Plain])

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = s == "<datetime>" ? .dateTime : .string(s) }
            else if let a = try? c.decode([Plain].self) { self = .array(a) }
            else { self = .object(try c.decode([String: Plain].self)) }
        }

        init(_ v: TOMLValue) {
            switch v {
            case .string(let s): self = .string(s)
            case .integer(let i): self = .number(Double(i))
            case .float(let d): self = .number(d)
            case .bool(let b): self = .bool(b)
            case .dateTime: self = .dateTime
            case .array(let a): self = .array(a.map(Plain.init))
            case .table(let t): self = .object(Dictionary(uniqueKeysWithValues: t.map { ($0.key, Plain($0.value)) }))
            }
        }
    }

    static func reference(_ path: String) throws -> Plain {
        let script = "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb')), default=lambda o: '<datetime>'))"
        let (status, out) = try RegistryHarness.spawnAndWait("/usr/bin/python3", ["-c", script, path])
        try #require(status == 0, "tomllib could not read \(path)")
        return try JSONDecoder().decode(Plain.self, from: Data(out.utf8))
    }

    @Test("every fixture reads as tomllib reads it", arguments: try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted())
    func matchesTomllib(_ name: String) throws {
        let path = "\(Self.fixtures)/\(name)"
        let ours = Plain(.table(try TOMLParser.parse(String(contentsOfFile: path, encoding: .utf8))))
        #expect(ours == (try Self.reference(path)))
    }

    @Test("tables keep file order (containerd tries hosts in the order written)")
    func order() throws {
        let t = try TOMLParser.parse(String(contentsOfFile: "\(Self.fixtures)/hosts.toml", encoding: .utf8))
        #expect(t["host"]?.table?.map(\.key) == ["https://mirror-b:5443", "http://mirror-a:5000"])
        let d = try TOMLParser.parse("b = 1\na = 2\nt = 1979-05-27T07:32:00Z\nx = -inf\n")
        #expect(d.map(\.key) == ["b", "a", "t", "x"])
        #expect(d["t"] == .dateTime("1979-05-27T07:32:00Z"))
        #expect(d["x"] == .float(-.infinity))
    }

    @Test("what it refuses, with line and column", arguments: [
        ("a = 1\na = 2\n", 2, 1, "duplicate key a"),
        ("[t]\nx = 1\n[t]\n", 3, 1, "defined more than once"),
        ("a = \"open\n", 1, 5, "cannot span lines"),
        ("a = [1, 2\n", 1, 5, "unterminated array"),
        ("a = 1 2\n", 1, 7, "expected the end of the line"),
        ("a 1\n", 1, 3, "\"=\""),
        ("a = 01\n", 1, 5, "invalid value (strings are quoted; the value is not shown, it may be a secret)"),
        ("a = 1__0\n", 1, 5, "invalid value"),
        ("a = tru\n", 1, 5, "invalid value (strings are quoted; the value is not shown, it may be a secret)"),
        ("a = 1\n[a]\n", 2, 1, "already a value"),
        ("a = \"\\q\"\n", 1, 6, "unknown escape"),
        ("x = {a = 1,\n b = 2}\n", 1, 12, "a key is missing"),
        ("[[a]]\n[a]\n", 2, 1, "defined more than once"),
        // Found by fuzzing (FuzzContainerdHosts): control characters were taken in literal and multi-line strings.
        ("[host.'a\u{18}b']\n", 1, 10, "a control character in a string"),
        ("a = 'x\u{7F}'\n", 1, 8, "a control character in a string"),
        ("a = \"\"\"\nx\u{0}\"\"\"\n", 2, 3, "a control character in a string"),
        ("a = " + "'''x\u{1B}'''\n", 1, 10, "a control character in a string"),
    ] as [(String, Int, Int, String)])
    func refuses(_ text: String, _ line: Int, _ column: Int, _ problem: String) {
        do {
            let t = try TOMLParser.parse(text)
            Issue.record("accepted: \(t)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.column == column, "\(error)")
            #expect(error.message.contains(problem), "\(error)")
        }
    }
}
