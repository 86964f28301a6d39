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
}
