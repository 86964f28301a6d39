import CCurl
import FoundationEssentials
import RegwatchShared
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Pull events the aggregator has not acknowledged yet, kept in `stateDir/events.spool` so they
/// survive an agent restart (kill -9 included) and an aggregator outage.
///
/// The file is an append-only journal of lines: `N <next seq>` (written at compaction), `+<event JSON>`
/// (spooled) and `-<seq>` (acknowledged or dropped). Replaying it rebuilds the pending set; a torn last
/// line from a crash is ignored. Sequence numbers never repeat across restarts, because the aggregator
/// deduplicates by (host, seq): a reused number would make a new event look like a resend.
///
/// Bounded by `maxBytes` of pending events: when full, the oldest are dropped first and counted
/// (fail static: the agent keeps working and says what it lost).
public final class EventSpool: Sendable {
    public struct Statistics: Sendable, Equatable {
        public var pending = 0
        public var pendingBytes = 0
        public var spooled = 0
        public var acknowledged = 0
        public var dropped = 0
        public var nextSeq: UInt64 = 1
    }

    public struct SpoolError: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Where a pending event's journal line (`+…\n`) is. Only this index is kept in memory and the line
    /// is read back when sent, so a full spool costs kilobytes of RAM, not its byte bound: the agent's
    /// memory limit is set from its peak. `inline` holds the line when the journal could not be written.
    struct Entry {
        var offset: Int
        var length: Int
        var inline: [UInt8]?
    }

    struct State {
        /// The journal, open for appending and reading (`pread`); -1 before the first compaction.
        var fd: Int32
        var pending: [UInt64: Entry] = [:]
        /// Pending seqs in ascending order; acknowledged ones are removed lazily.
        var order: [UInt64] = []
        var orderHead = 0
        var stats = Statistics()
        /// The journal's size: where the next line lands.
        var journalBytes = 0
    }

    public let path: String
    public let maxBytes: Int
    private let state: Mutex<State>

    /// Opens (or creates) the spool in `directory`, replaying what a previous run left.
    public init(directory: String, maxBytes: Int) throws(SpoolError) {
        path = directory + "/events.spool"
        self.maxBytes = max(4096, maxBytes)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SpoolError(path: directory, reason: "cannot create the state directory: \(String(describing: error))")
        }
        var s = State(fd: -1)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            s.fd = fd
            guard Self.replay(fd, into: &s) else {
                throw SpoolError(path: path, reason: "cannot read the spool: \(String(cString: strerror(errno)))")
            }
        } else if errno != ENOENT {
            throw SpoolError(path: path, reason: "cannot read the spool: \(String(cString: strerror(errno)))")
        }
        state = Mutex(s)
        // Rewrites the journal without dead lines or a torn tail, and opens it for appending.
        try compact()
    }

    deinit {
        state.withLock { s in if s.fd >= 0 { close(s.fd) } }
    }

    public var statistics: Statistics { state.withLock { $0.stats } }

    /// Numbers and stores events (their `seq` is replaced); returns them as spooled.
    /// Oldest pending events are dropped when the byte bound would be exceeded.
    @discardableResult
    public func append(_ events: [PullEvent]) -> [PullEvent] {
        guard !events.isEmpty else { return [] }
        let encoder = JSONCoding.encoder()
        var needsCompaction = false
        defer { if needsCompaction { try? compact() } }
        return state.withLock { s in
            var out: [PullEvent] = []
            var journal: [UInt8] = []
            for var event in events {
                event.seq = s.stats.nextSeq
                s.stats.nextSeq += 1
                guard let json = try? encoder.encode(event) else { continue }
                let start = journal.count
                journal.append(UInt8(ascii: "+"))
                journal.append(contentsOf: json)
                journal.append(UInt8(ascii: "\n"))
                s.pending[event.seq] = Entry(offset: s.journalBytes + start, length: journal.count - start)
                s.order.append(event.seq)
                s.stats.pending += 1
                s.stats.pendingBytes += journal.count - start
                s.stats.spooled += 1
                out.append(event)
            }
            while s.stats.pendingBytes > maxBytes, let oldest = Self.oldest(&s) {
                Self.remove(oldest, from: &s)
                s.stats.dropped += 1
                journal.append(contentsOf: Array("-\(oldest)\n".utf8))
            }
            let base = s.journalBytes
            if !Self.write(journal, to: &s) {
                // Not on disk: keep these lines in memory so they are still sent (fail static).
                for e in out {
                    guard let entry = s.pending[e.seq], entry.offset >= base else { continue }
                    let from = entry.offset - base
                    s.pending[e.seq]?.inline = Array(journal[from..<(from + entry.length)])
                }
            }
            needsCompaction = s.journalBytes > max(64 * 1024, 2 * maxBytes)
            return out.filter { s.pending[$0.seq] != nil }
        }
    }

    /// Removes acknowledged events; unknown seqs (already acknowledged, dropped) are ignored.
    public func acknowledge(_ seqs: [UInt64]) {
        var needsCompaction = false
        state.withLock { s in
            var journal: [UInt8] = []
            for seq in seqs where s.pending[seq] != nil {
                Self.remove(seq, from: &s)
                s.stats.acknowledged += 1
                journal.append(contentsOf: Array("-\(seq)\n".utf8))
            }
            // Unwritten, these events are sent again after a restart; the aggregator drops the duplicates.
            _ = Self.write(journal, to: &s)
            needsCompaction = s.journalBytes > max(64 * 1024, 2 * s.stats.pendingBytes)
        }
        if needsCompaction { try? compact() }
    }

    /// Pending events in sequence order, up to `limit` events or `maxBytes` of JSON, those for which
    /// `include` is true.
    public func pending(limit: Int, maxBytes: Int = .max, where include: (UInt64) -> Bool = { _ in true }) -> [PullEvent] {
        let decoder = JSONCoding.decoder()
        return state.withLock { s in
            var out: [PullEvent] = []
            var bytes = 0
            var i = s.orderHead
            while i < s.order.count, out.count < limit {
                let seq = s.order[i]
                i += 1
                guard let entry = s.pending[seq], include(seq) else { continue }
                if bytes + entry.length > maxBytes && !out.isEmpty { break }
                guard let line = Self.line(entry, in: s), let event = try? decoder.decode(PullEvent.self, from: Data(line.dropFirst())) else {
                    continue
                }
                bytes += entry.length
                out.append(event)
            }
            return out
        }
    }

    /// The sequence numbers still pending, without decoding the events.
    public var pendingSeqs: Set<UInt64> { state.withLock { Set($0.pending.keys) } }

    /// Rewrites the journal with only the pending events (temp file, fsync, rename, fsync directory),
    /// copying them from the old journal in chunks rather than holding them all at once.
    public func compact() throws(SpoolError) {
        try state.withLock { (s: inout State) throws(SpoolError) in
            let header = Array("N \(s.stats.nextSeq)\n".utf8)
            let live = s.order[s.orderHead...].filter { s.pending[$0] != nil }
            var moved: [(UInt64, Int)] = []
            moved.reserveCapacity(live.count)
            var offset = header.count
            var lost: [UInt64] = []
            do throws(AtomicFile.WriteError) {
                try AtomicFile.write(to: path, mode: 0o600) { (emit: ([UInt8]) throws(AtomicFile.WriteError) -> Void) throws(AtomicFile.WriteError) in
                    var chunk = header
                    chunk.reserveCapacity(64 * 1024)
                    for seq in live {
                        guard let entry = s.pending[seq], let line = Self.line(entry, in: s) else { lost.append(seq); continue }
                        moved.append((seq, offset))
                        offset += line.count
                        chunk.append(contentsOf: line)
                        if chunk.count >= 64 * 1024 {
                            try emit(chunk)
                            chunk.removeAll(keepingCapacity: true)
                        }
                    }
                    try emit(chunk)
                }
            } catch {
                throw SpoolError(path: path, reason: error.reason)
            }
            if s.fd >= 0 { close(s.fd) }
            s.fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard s.fd >= 0 else { throw SpoolError(path: path, reason: "cannot open for append: \(String(cString: strerror(errno)))") }
            for (seq, at) in moved {
                s.pending[seq]?.offset = at
                s.pending[seq]?.inline = nil
            }
            // Lines the old journal no longer gave back are gone: counted as dropped, not sent half-read.
            for seq in lost {
                Self.remove(seq, from: &s)
                s.stats.dropped += 1
            }
            s.order = live.filter { s.pending[$0] != nil }
            s.orderHead = 0
            s.journalBytes = offset
        }
        _ = ccurl_malloc_trim()
    }

    // MARK: - Internals

    private static func oldest(_ s: inout State) -> UInt64? {
        while s.orderHead < s.order.count {
            let seq = s.order[s.orderHead]
            if s.pending[seq] != nil { return seq }
            s.orderHead += 1
        }
        return nil
    }

    private static func remove(_ seq: UInt64, from s: inout State) {
        guard let e = s.pending.removeValue(forKey: seq) else { return }
        s.stats.pending -= 1
        s.stats.pendingBytes -= e.length
        if s.orderHead > 1024 && s.orderHead * 2 > s.order.count {
            s.order.removeFirst(s.orderHead)
            s.orderHead = 0
        }
    }

    /// A pending event's journal line, read back from the file.
    private static func line(_ entry: Entry, in s: State) -> [UInt8]? {
        if let inline = entry.inline { return inline }
        guard s.fd >= 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: entry.length)
        var done = 0
        while done < entry.length {
            let n = buffer.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress! + done, entry.length - done, off_t(entry.offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        guard buffer.first == UInt8(ascii: "+"), buffer.last == UInt8(ascii: "\n") else { return nil }
        return buffer
    }

    /// Appends to the journal; false when the bytes did not all reach the file.
    private static func write(_ bytes: [UInt8], to s: inout State) -> Bool {
        guard !bytes.isEmpty else { return true }
        guard s.fd >= 0 else { return false }
        // write(2) into the page cache survives a killed process; fdatasync covers a host crash.
        let written = bytes.withUnsafeBytes { buf -> Int in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(s.fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; break }
                off += n
            }
            return off
        }
        fdatasync(s.fd)
        guard written == bytes.count else {
            // Whatever did land is the file's new end.
            let end = lseek(s.fd, 0, SEEK_END)
            s.journalBytes = end >= 0 ? Int(end) : s.journalBytes + written
            return false
        }
        s.journalBytes += bytes.count
        return true
    }

    /// Rebuilds the pending index from a journal read in chunks; lines that do not parse (a torn tail)
    /// are skipped. False when the file cannot be read.
    static func replay(_ fd: Int32, into s: inout State) -> Bool {
        let decoder = JSONCoding.decoder()
        var maxSeq: UInt64 = 0
        var carry: [UInt8] = []
        var carryOffset = 0
        var fileOffset = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        func process(_ raw: ArraySlice<UInt8>, offset: Int) {
            guard let tag = raw.first else { return }
            let body = raw.dropFirst()
            switch tag {
            case UInt8(ascii: "N"):
                if let n = UInt64(String(decoding: body, as: UTF8.self).trimmingSpaces()) { s.stats.nextSeq = max(s.stats.nextSeq, n) }
            case UInt8(ascii: "+"):
                guard let event = try? decoder.decode(PullEvent.self, from: Data(body)) else { return }
                if let old = s.pending[event.seq] { s.stats.pendingBytes -= old.length }
                s.pending[event.seq] = Entry(offset: offset, length: raw.count + 1)
                s.stats.pendingBytes += raw.count + 1
                maxSeq = max(maxSeq, event.seq)
            case UInt8(ascii: "-"):
                if let seq = UInt64(String(decoding: body, as: UTF8.self)) {
                    if let old = s.pending.removeValue(forKey: seq) { s.stats.pendingBytes -= old.length }
                    maxSeq = max(maxSeq, seq)
                }
            default:
                return
            }
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { return false }
            if n == 0 { break }
            var lineStart = 0
            for i in 0..<n where chunk[i] == UInt8(ascii: "\n") {
                if carry.isEmpty {
                    process(chunk[lineStart..<i], offset: fileOffset + lineStart)
                } else {
                    carry.append(contentsOf: chunk[lineStart..<i])
                    process(carry[...], offset: carryOffset)
                    carry.removeAll(keepingCapacity: true)
                }
                lineStart = i + 1
            }
            if lineStart < n {
                if carry.isEmpty { carryOffset = fileOffset + lineStart }
                carry.append(contentsOf: chunk[lineStart..<n])
            }
            fileOffset += n
        }
        // A line without its newline is a torn write: not replayed.
        s.stats.nextSeq = max(s.stats.nextSeq, maxSeq + 1)
        s.order = s.pending.keys.sorted()
        s.stats.pending = s.pending.count
        return true
    }
}
