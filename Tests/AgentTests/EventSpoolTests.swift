import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Event spool")
struct EventSpoolTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "rw-spool-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func event(_ image: String) -> PullEvent {
        PullEvent(seq: 0, at: Date(timeIntervalSince1970: 1_795_914_000), image: image, registry: "docker.io", result: .success, errorClass: .ok, source: "test")
    }

    @Test("numbers events, keeps unacknowledged ones across a reopen, never reuses a sequence number")
    func survivesReopen() throws {
        let dir = tempDir()
        do {
            let spool = try EventSpool(directory: dir, maxBytes: 1 << 20)
            let spooled = spool.append([event("a:1"), event("b:1"), event("c:1")])
            #expect(spooled.map(\.seq) == [1, 2, 3])
            spool.acknowledge([2])
        }
        let reopened = try EventSpool(directory: dir, maxBytes: 1 << 20)
        #expect(reopened.pending(limit: 10).map(\.image) == ["a:1", "c:1"])
        #expect(reopened.pending(limit: 10).map(\.seq) == [1, 3])
        reopened.acknowledge([1, 3])
        // Everything acknowledged and compacted away: the next number still continues.
        try reopened.compact()
        let again = try EventSpool(directory: dir, maxBytes: 1 << 20)
        #expect(again.statistics.pending == 0)
        #expect(again.append([event("d:1")]).first?.seq == 4)
    }

    @Test("a torn last line from a crash is ignored, the rest replays")
    func tornTail() throws {
        let dir = tempDir()
        do {
            let spool = try EventSpool(directory: dir, maxBytes: 1 << 20)
            spool.append([event("a:1"), event("b:1")])
        }
        let handle = try #require(FileHandle(forWritingAtPath: dir + "/events.spool"))
        handle.seekToEndOfFile()
        handle.write(Data("+{\"seq\":3,\"at\":\"2026-".utf8))
        try handle.close()
        let spool = try EventSpool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.pending(limit: 10).map(\.seq) == [1, 2])
        #expect(spool.append([event("c:1")]).first?.seq == 3)
    }

    @Test("bounded: the oldest are dropped first and counted, the file stays near the bound")
    func bounded() throws {
        let dir = tempDir()
        let spool = try EventSpool(directory: dir, maxBytes: 8192)
        for i in 0..<200 { spool.append([event("img\(i):1")]) }
        let s = spool.statistics
        #expect(s.pendingBytes <= 8192)
        #expect(s.dropped > 0)
        #expect(s.dropped + s.pending == 200)
        let pending = spool.pending(limit: .max)
        #expect(pending.last?.seq == 200)
        #expect(pending.first?.seq == UInt64(s.dropped + 1))
        try spool.compact()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/events.spool")[.size] as? Int)
        #expect(size <= 8192 + 64)
    }

    @Test("acknowledgements compact the journal once it is mostly dead lines")
    func compaction() throws {
        let dir = tempDir()
        let spool = try EventSpool(directory: dir, maxBytes: 1 << 24)
        for round in 0..<20 {
            let spooled = spool.append((0..<100).map { event("r\(round)-\($0):1") })
            spool.acknowledge(spooled.map(\.seq))
        }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/events.spool")[.size] as? Int)
        #expect(size < 64 * 1024 + 20_000, "journal not compacted: \(size) bytes")
        #expect(spool.statistics.acknowledged == 2000)
    }

    @Test("events are read back from the journal: across compactions (copied in chunks) and a reopen, each is intact and in order")
    func readBack() throws {
        let dir = tempDir()
        let images = (0..<3000).map { "registry.test:5000/team/app-\($0):\($0)" }
        do {
            let spool = try EventSpool(directory: dir, maxBytes: 4 << 20)
            spool.append(images.map(event))
            spool.acknowledge(Array(stride(from: 1, through: 3000, by: 3)))
            try spool.compact()
            #expect(spool.pending(limit: .max).map(\.image) == images.enumerated().filter { $0.offset % 3 != 0 }.map(\.element))
            spool.append([event("after:compaction")])
        }
        let reopened = try EventSpool(directory: dir, maxBytes: 4 << 20)
        let pending = reopened.pending(limit: .max)
        #expect(pending.count == 2001)
        #expect(pending.last?.image == "after:compaction")
        #expect(pending.dropLast().map(\.image) == images.enumerated().filter { $0.offset % 3 != 0 }.map(\.element))
        #expect(reopened.statistics.pendingBytes == (try FileManager.default.attributesOfItem(atPath: dir + "/events.spool")[.size] as? Int ?? 0) - "N 3002\n".utf8.count)
    }

    @Test("pending(limit:maxBytes:where:) respects all three bounds")
    func pendingSelection() throws {
        let spool = try EventSpool(directory: tempDir(), maxBytes: 1 << 20)
        spool.append((0..<10).map { event("i\($0):1") })
        #expect(spool.pending(limit: 3).map(\.seq) == [1, 2, 3])
        #expect(spool.pending(limit: 10) { $0 % 2 == 0 }.map(\.seq) == [2, 4, 6, 8, 10])
        #expect(spool.pending(limit: 10, maxBytes: 1).count == 1)
    }

    @Test("an unwritable state directory is one clear error naming it")
    func unwritable() {
        #expect(throws: EventSpool.SpoolError.self) { try EventSpool(directory: "/proc/regwatch-nope", maxBytes: 4096) }
    }
}
