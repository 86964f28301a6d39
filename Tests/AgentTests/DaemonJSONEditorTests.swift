import Foundation
@testable import RegwatchAgent
import Testing

@Suite("daemon.json editor")
struct DaemonJSONEditorTests {
    func edit(_ text: String, _ mirrors: [String]) throws -> String {
        String(decoding: try DaemonJSONEditor.setMirrors(mirrors, in: Array(text.utf8)), as: UTF8.self)
    }

    @Test("replaces only the registry-mirrors value; every other byte stays")
    func replaces() throws {
        let original = """
        {
            "log-driver": "json-file",
            "log-opts": {"max-size": "10m", "max-file": "3"},
            "registry-mirrors": ["https://mirror-a:5000", "https://mirror-b:5000"],
            "storage-driver": "overlay2",
            "proxies": {"http-proxy": "http://proxy:3128", "no-proxy": "localhost,10.0.0.0/8"},
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
            "max-concurrent-downloads": 3.0,
            "insecure-registries": []
        }

        """
        let edited = try edit(original, ["https://mirror-b:5000"])
        #expect(edited == original.replacingOccurrences(of: #"["https://mirror-a:5000", "https://mirror-b:5000"]"#, with: #"["https://mirror-b:5000"]"#))
    }

    @Test("adds the key before the first member with its indentation, inline files stay inline, empty files get an object")
    func inserts() throws {
        #expect(try edit("{\n  \"debug\": true\n}\n", ["https://m:5000"]) == "{\n  \"registry-mirrors\": [\"https://m:5000\"],\n  \"debug\": true\n}\n")
        #expect(try edit("{\"debug\": true}", ["https://m:5000"]) == "{\"registry-mirrors\": [\"https://m:5000\"], \"debug\": true}")
        #expect(try edit("", ["https://m:5000"]) == "{\n  \"registry-mirrors\": [\"https://m:5000\"]\n}\n")
        #expect(try edit("{}", []) == "{\n  \"registry-mirrors\": []\n}")
    }

    @Test("an unparseable, non-object or ambiguous file is never rewritten")
    func refuses() {
        for bad in ["{\"a\": 1,}", "[1, 2]", "{\"registry-mirrors\": [], \"registry-mirrors\": []}", "{\"a\": 1} trailing", "\u{FEFF}{}"] {
            #expect(throws: DaemonJSONEditor.Failure.self, "\(bad)") { _ = try edit(bad, ["https://m:5000"]) }
        }
    }

    @Test("mirror strings are JSON-escaped")
    func escaping() throws {
        let edited = try edit("{}", ["https://m:5000/\"x\\"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(edited.utf8)) as? [String: Any])
        #expect(object["registry-mirrors"] as? [String] == ["https://m:5000/\"x\\"])
    }

    /// Found by fuzzing (FuzzDaemonJSON): the strict check, like dockerd, takes invalid UTF-8 inside a string;
    /// the value reader refused the whole file, so it was reported invalid and every edit failed read-back.
    /// Found by fuzzing (FuzzDaemonJSON): `JSONDecoder` refuses a zero with an exponent, valid JSON to dockerd.
    @Test("a zero with an exponent is a number, not a reason to call the file broken")
    func zeroExponent() throws {
        let original = Array(#"{"max-concurrent-downloads": 0e1, "x": [-0.0E2, 10e1, 1.5e1, 0e0, "0e1"], "registry-mirrors": []}"#.utf8)
        #expect(JSONValue.parse(original)?["x"] == .array([.number(-0.0), .number(100), .number(15), .number(0), .string("0e1")]))
        #expect(JSONValue.parse(Array("0E1".utf8)) == .number(0))
        #expect(JSONValue.parse(Array("[1E-555, -2e-400]".utf8)) == .array([.number(0), .number(-0.0)]))
        // Unpaired surrogate escapes read as U+FFFD; a pair stays the character it encodes.
        #expect(JSONValue.parse(Array(#"["\uddFFx", "\ud83dy", "\ud83d\ude00", "\\ud800"]"#.utf8))
            == .array([.string("\u{FFFD}x"), .string("\u{FFFD}y"), .string("\u{1F600}"), .string("\\ud800")]))
        #expect(try DockerDaemonConfig.parse(original, path: "daemon.json").mirrors == [])
        let edited = try DaemonJSONEditor.setMirrors(["https://m:5000"], in: original)
        #expect(String(decoding: edited, as: UTF8.self).contains(#""max-concurrent-downloads": 0e1,"#))
        // Beyond a Double dockerd refuses the file too: refused here as such, not as an internal error.
        let error = #expect(throws: DaemonJSONEditor.Failure.self) { try DaemonJSONEditor.setMirrors([], in: Array(#"{"a": 3E333}"#.utf8)) }
        #expect(error?.message.hasPrefix("daemon.json has a value that cannot be read") == true)
    }

    @Test("invalid UTF-8 inside a string is read as dockerd reads it, and the file is still edited")
    func invalidUTF8() throws {
        let original = Array(#"{"registry-mirrors": ["https://mirror-a:5000"], "labels": ["zone="#.utf8) + [0xFF, 0xFE] + Array(#""]}"#.utf8)
        #expect(try DockerDaemonConfig.parse(original, path: "daemon.json").mirrors == ["https://mirror-a:5000"])
        #expect(JSONValue.parse(original)?["labels"]?.strings == ["zone=\u{FFFD}\u{FFFD}"])
        let edited = try DaemonJSONEditor.setMirrors(["https://mirror-b:5000"], in: original)
        #expect(edited == Array(#"{"registry-mirrors": ["https://mirror-b:5000"], "labels": ["zone="#.utf8) + [0xFF, 0xFE] + Array(#""]}"#.utf8))
        #expect(try DockerDaemonConfig.parse(edited, path: "daemon.json").mirrors == ["https://mirror-b:5000"])
    }
}
