import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Pull-event sources")
struct EventSourceTests {
    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/events/\(name)"))
    }

    @Test("Docker /events response decoded byte by byte: two pulls, the tag event ignored")
    func dockerEventsByteByByte() throws {
        let bytes = [UInt8](try Self.fixture("docker-events.http"))
        var http = HTTPStreamDecoder()
        var lines = LineSplitter()
        var events: [PullEvent] = []
        for b in bytes {
            for line in lines.feed(try http.feed([b])) where !line.isEmpty {
                if let e = try JSONDecoder().decode(DockerEvent.self, from: Data(line.utf8)).pullEvent() { events.append(e) }
            }
        }
        #expect(http.status == 200)
        #expect(http.chunked)
        #expect(events.map(\.image) == ["docker.io/library/alpine:3.20", "127.0.0.1:5000/test/app:1"])
        #expect(events.map(\.registry) == ["docker.io", "127.0.0.1:5000"])
        #expect(events.allSatisfy { $0.result == .success && $0.errorClass == .ok && $0.source == "docker-events" })
        #expect(abs(events[0].at.timeIntervalSince1970 - 1_795_914_000.123) < 0.001)
    }

    @Test("a non-2xx answer and broken chunk framing are errors, not silence")
    func httpErrors() {
        var a = HTTPStreamDecoder()
        #expect(throws: HTTPStreamDecoder.Failure.status(400, "Bad Request")) { _ = try a.feed(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)) }
        var b = HTTPStreamDecoder()
        #expect(throws: HTTPStreamDecoder.Failure.self) { _ = try b.feed(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8)) }
        var c = HTTPStreamDecoder()
        #expect(throws: HTTPStreamDecoder.Failure.self) { _ = try c.feed(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8)) }
    }

    @Test("journal JSON lines: string and byte-array MESSAGE, unit as source, other lines ignored")
    func journalLines() throws {
        let lines = String(decoding: try Self.fixture("journal.jsonl"), as: UTF8.self).split(separator: "\n").map(String.init)
        let events = lines.compactMap(JournalSource.event(fromJSONLine:))
        #expect(events.count == 2)
        #expect(events[0].image == "docker.io/library/nginx:1.27")
        #expect(events[0].errorClass == .rateLimited)
        #expect(events[0].source == "journal:containerd")
        #expect(events[0].at == Date(timeIntervalSince1970: 1_795_914_123))
        #expect(events[1].endpoint == "https://mirror-a:5000")
        #expect(events[1].errorClass == .tcpRefused)
        #expect(events[1].source == "journal:docker")
    }

    @Test("file tail: starts at the end, follows rename rotation and truncation, flushes a partial line on rotation")
    func fileRotation() throws {
        let dir = NSTemporaryDirectory() + "rw-tail-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/kubelet.log"
        func append(_ s: String, to p: String = path) throws {
            if !FileManager.default.fileExists(atPath: p) { FileManager.default.createFile(atPath: p, contents: nil) }
            let h = try #require(FileHandle(forWritingAtPath: p))
            h.seekToEndOfFile()
            h.write(Data(s.utf8))
            try h.close()
        }
        try append("old line before start\n")
        var tail = FileTail(path: path)
        tail.open(fromStart: false)
        #expect(tail.poll() == .active)
        #expect(tail.takeLines().isEmpty)

        try append("one\ntw")
        _ = tail.poll()
        #expect(tail.takeLines() == ["one"])
        // Rotation: the old file gets its last bytes after the rename, then a new file appears.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try append("o\n", to: path + ".1")
        _ = tail.poll()
        #expect(tail.takeLines() == ["two"])
        try append("three\n")
        _ = tail.poll()
        #expect(tail.takeLines() == ["three"])
        // copytruncate
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.truncateFile(atOffset: 0)
        try h.close()
        try append("four\n")
        _ = tail.poll()
        #expect(tail.takeLines() == ["four"])
        tail.close()
    }

    @Test("a file that does not exist yet is absent, then read from its start once it appears")
    func appearsLater() throws {
        let path = NSTemporaryDirectory() + "rw-tail-\(UUID().uuidString).log"
        var tail = FileTail(path: path)
        tail.open(fromStart: false)
        #expect(tail.poll() == .absent)
        try "first\nsecond\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(tail.poll() == .active)
        #expect(tail.takeLines() == ["first", "second"])
    }

    @Test("absent sources are reported once in the status list, and recover to active")
    func absentStatus() async throws {
        let sink = PullEventSink(logger: .init(label: "test"))
        let source = DockerEventsSource(socketPath: "/nonexistent/docker.sock", recheckAbsent: .seconds(3600), logger: .init(label: "test"))
        let task = Task { await source.run(into: sink) }
        for _ in 0..<100 where sink.statusList.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        #expect(sink.statusList == [EventSourceStatus(name: "docker-events", state: .absent, detail: "no Docker socket at /nonexistent/docker.sock")])
        let journal = JournalSource(units: ["docker"], recheckAbsent: .seconds(3600), systemdMarker: "/nonexistent/systemd", logger: .init(label: "test"))
        let t2 = Task { await journal.run(into: sink) }
        for _ in 0..<100 where sink.statusList.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        t2.cancel()
        #expect(sink.statusList.map(\.state) == [.absent, .absent])
    }
}
