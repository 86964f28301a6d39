import Foundation
@testable import RegwatchAgent
import RegwatchShared
import RegwatchTestSupport
import Synchronization
import Testing

@Suite("Pull-event sources")
struct EventSourceTests {
    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/events/\(name)"))
    }

    /// A stand-in for dockerd's API socket: answers one request with `response` and closes; the request
    /// it read is left in `requestFile`.
    static func fakeDockerd(socket: String, response: String, requestFile: String) throws -> Process {
        let script = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
        c, _ = s.accept(); req = b""
        while b"\\r\\n\\r\\n" not in req:
            chunk = c.recv(4096)
            if not chunk: break
            req += chunk
        open(sys.argv[3], "wb").write(req)
        c.sendall(open(sys.argv[2], "rb").read()); c.close()
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", script, socket, response, requestFile]
        try p.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        try #require(FileManager.default.fileExists(atPath: socket), "the fake dockerd did not come up")
        return p
    }

    @Test("Docker /events through libcurl: dockerd's captured chunked answer on a unix socket gives the two pulls, not the tag; active, then ended")
    func dockerEventsThroughCurl() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-events-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/events/docker-events.http").path
        let server = try Self.fakeDockerd(socket: "\(dir)/docker.sock", response: fixture, requestFile: "\(dir)/request")
        defer { server.terminate() }
        let sink = PullEventSink(logger: .init(label: "test"))
        let source = DockerEventsSource(socketPath: "\(dir)/docker.sock", runner: CurlMultiRunner(), logger: .init(label: "test"))
        let end = try await withDeadline(10, "the event stream to end") { await source.stream(into: sink) }
        #expect(end == .ended(receivedHead: true))
        sink.continuation.finish()
        var events: [PullEvent] = []
        for await group in sink.events { events += group }
        #expect(events.map(\.image) == ["docker.io/library/alpine:3.20", "127.0.0.1:5000/test/app:1"])
        #expect(events.map(\.registry) == ["docker.io", "127.0.0.1:5000"])
        #expect(events.allSatisfy { $0.result == .success && $0.errorClass == .ok && $0.source == "docker-events" })
        #expect(abs(events[0].at.timeIntervalSince1970 - 1_795_914_000.123) < 0.001)
        #expect(sink.statusList == [EventSourceStatus(name: "docker-events", state: .active, detail: "streaming \(dir)/docker.sock")])
        let request = try String(contentsOfFile: "\(dir)/request", encoding: .utf8)
        #expect(request.hasPrefix("GET /events?filters=%7B%22type%22%3A%5B%22image%22%5D%2C%22event%22%3A%5B%22pull%22%5D%7D HTTP/1.1\r\n"))
    }

    @Test("a non-2xx answer from /events is a failure naming the status, and nothing is emitted")
    func dockerEventsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-events-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{\"message\":\"bad filter v\"}\n"
            .write(toFile: "\(dir)/answer", atomically: true, encoding: .utf8)
        let server = try Self.fakeDockerd(socket: "\(dir)/docker.sock", response: "\(dir)/answer", requestFile: "\(dir)/request")
        defer { server.terminate() }
        let sink = PullEventSink(logger: .init(label: "test"))
        let source = DockerEventsSource(socketPath: "\(dir)/docker.sock", runner: CurlMultiRunner(), logger: .init(label: "test"))
        let end = try await withDeadline(10, "the refused stream to end") { await source.stream(into: sink) }
        #expect(end == .failed("unexpected answer from \(dir)/docker.sock GET /events: HTTP 400"))
        sink.continuation.finish()
        var events: [PullEvent] = []
        for await group in sink.events { events += group }
        #expect(events.isEmpty)
    }

    @Test("Docker's JSON lines split at any byte still decode: pulls kept, other events and garbage skipped")
    func dockerEventLinesByteByByte() {
        let lines = DockerEventLines(logger: .init(label: "test"))
        let text = #"{"status":"pull","id":"alpine:3.20","Type":"image","Action":"pull","Actor":{"ID":"alpine:3.20"},"time":1795914000}"# + "\n"
            + "not json\n" + #"{"Type":"image","Action":"tag","Actor":{"ID":"sha256:abc"}}"# + "\n"
        var events: [PullEvent] = []
        for b in Array(text.utf8) { events += lines.feed([b]) }
        #expect(events.map(\.image) == ["docker.io/library/alpine:3.20"])
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

    /// Appends to `path`, creating it when absent, as a logger does.
    static func append(_ s: String, to path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data(s.utf8))
        try h.close()
    }

    @Test("file tail: starts at the end, follows rename rotation and truncation, flushes a partial line on rotation")
    func fileRotation() throws {
        let dir = NSTemporaryDirectory() + "rw-tail-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/kubelet.log"
        func append(_ s: String, to p: String = path) throws { try Self.append(s, to: p) }
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

    /// What the notification test's background tasks saw.
    final class Seen: Sendable {
        let images = Mutex<[String]>([])
        let stopped = Atomic<Bool>(false)
    }

    @Test("a tailed file is read on inotify notifications: with an hour's poll, appended lines, a rotated-in file, a truncated one and a file created later all arrive within seconds; cancelling stops the tail thread")
    func fileNotifications() async throws {
        let dir = NSTemporaryDirectory() + "rw-notify-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/kubelet.log", later = dir + "/later.log"
        func line(_ n: Int) -> String {
            #"I1129 01:02:05.123456 1234 event.go:307] "Event occurred" reason="Failed" message="Failed to pull image \"registry.test:5000/team/app:\#(n)\": rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit""# + "\n"
        }
        func append(_ s: String, to p: String = path) throws { try Self.append(s, to: p) }
        try append(line(0))
        let sink = PullEventSink(logger: .init(label: "test"))
        let seen = Seen()
        let collector = Task { for await batch in sink.events { seen.images.withLock { $0 += batch.map(\.image) } } }
        defer { collector.cancel() }
        let source = LogFileSource(path: path, pollInterval: .seconds(3600), logger: .init(label: "test"))
        let laterSource = LogFileSource(path: later, pollInterval: .seconds(3600), logger: .init(label: "test"))
        let running = Task { await source.run(into: sink) }
        let laterRunning = Task { await laterSource.run(into: sink) }
        /// Waits up to 5 s for `count` images in all; the caller checks which.
        func arrived(_ count: Int) async throws -> [String] {
            for _ in 0..<500 where seen.images.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(10)) }
            return seen.images.withLock { $0 }
        }
        for _ in 0..<500 where sink.statusList.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(sink.statusList.map(\.state) == [.active, .absent], "\(sink.statusList)")

        try append(line(1001))
        #expect(try await arrived(1) == ["registry.test:5000/team/app:1001"], "the existing line was read, or the new one was not")
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try append(line(1002))
        #expect(try await arrived(2).last == "registry.test:5000/team/app:1002", "the rotated-in file was not read")
        // Truncation is seen by the size falling below what was read: the line after it is shorter.
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.truncateFile(atOffset: 0)
        try h.close()
        try append(line(3))
        #expect(try await arrived(3).last == "registry.test:5000/team/app:3", "the truncated file was not read again")
        try append(line(4), to: later)
        #expect(try await arrived(4).last == "registry.test:5000/team/app:4", "a file created later was not read")

        running.cancel()
        laterRunning.cancel()
        Task {
            await running.value
            await laterRunning.value
            seen.stopped.store(true, ordering: .relaxed)
        }
        for _ in 0..<500 where !seen.stopped.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(10)) }
        let ended = seen.stopped.load(ordering: .relaxed)
        #expect(ended, "the tail threads did not stop within 5 s of cancelling")
    }

    @Test("a file watch wakes when its file is linked into place (how a key is written), not for other names in the directory, and a stop ends the wait")
    func fileWatchWakes() throws {
        let dir = NSTemporaryDirectory() + "rw-watch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let watch = try #require(FileWatch(path: dir + "/agent.key.next"))
        watch.rearm()
        try AtomicFile.write(Array("other".utf8), to: dir + "/last-cycle")
        var start = ContinuousClock.now
        #expect(watch.wait(timeout: .milliseconds(300)))
        #expect(ContinuousClock.now - start >= .milliseconds(250), "another file in the directory woke the watch")
        watch.rearm()
        try AtomicFile.write(Array("key".utf8), to: dir + "/agent.key.next", mode: 0o600, exclusive: true)
        start = ContinuousClock.now
        #expect(watch.wait(timeout: .seconds(10)))
        #expect(ContinuousClock.now - start < .seconds(5), "linking the file into place did not wake the watch")
        watch.stop()
        #expect(!watch.wait(timeout: .seconds(10)))
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
        let source = DockerEventsSource(socketPath: "/nonexistent/docker.sock", recheckAbsent: .seconds(3600), runner: CurlMultiRunner(), logger: .init(label: "test"))
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
