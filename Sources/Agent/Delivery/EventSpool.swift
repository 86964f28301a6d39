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

    /// Only the journal line is kept in memory (decoded again when sent): a full spool then costs about
    /// its byte bound, not that plus a decoded copy.
    struct Entry {
        var line: [UInt8]
    }

    struct State {
        var fd: Int32
        var pending: [UInt64: Entry] = [:]
        /// Pending seqs in ascending order; acknowledged ones are removed lazily.
        var order: [UInt64] = []
        var orderHead = 0
        var stats = Statistics()
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
        if let data = FileManager.default.contents(atPath: path) {
            Self.replay(data, into: &s)
        } else if FileManager.default.fileExists(atPath: path) {
            throw SpoolError(path: path, reason: "cannot read the spool: \(String(cString: strerror(errno)))")
        }
        state = Mutex(s)
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
                var line: [UInt8] = [UInt8(ascii: "+")]
                line.append(contentsOf: json)
                line.append(UInt8(ascii: "\n"))
                journal.append(contentsOf: line)
                s.pending[event.seq] = Entry(line: line)
                s.order.append(event.seq)
                s.stats.pending += 1
                s.stats.pendingBytes += line.count
                s.stats.spooled += 1
                out.append(event)
            }
            while s.stats.pendingBytes > maxBytes, let oldest = Self.oldest(&s) {
                Self.remove(oldest, from: &s)
                s.stats.dropped += 1
                journal.append(contentsOf: Array("-\(oldest)\n".utf8))
            }
            Self.write(journal, to: &s)
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
            Self.write(journal, to: &s)
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
                if bytes + entry.line.count > maxBytes && !out.isEmpty { break }
                guard let event = try? decoder.decode(PullEvent.self, from: Data(entry.line.dropFirst())) else { continue }
                bytes += entry.line.count
                out.append(event)
            }
            return out
        }
    }

    /// The sequence numbers still pending, without decoding the events.
    public var pendingSeqs: Set<UInt64> { state.withLock { Set($0.pending.keys) } }

    /// Rewrites the journal with only the pending events (temp file, fsync, rename, fsync directory).
    public func compact() throws(SpoolError) {
        try state.withLock { (s: inout State) throws(SpoolError) in
            var bytes = Array("N \(s.stats.nextSeq)\n".utf8)
            for seq in s.order[s.orderHead...] { if let e = s.pending[seq] { bytes.append(contentsOf: e.line) } }
            s.order = Array(s.order[s.orderHead...].filter { s.pending[$0] != nil })
            s.orderHead = 0
            do throws(AtomicFile.WriteError) {
                try AtomicFile.write(bytes, to: path, mode: 0o600)
            } catch {
                throw SpoolError(path: path, reason: error.reason)
            }
            if s.fd >= 0 { close(s.fd) }
            s.fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            guard s.fd >= 0 else { throw SpoolError(path: path, reason: "cannot open for append: \(String(cString: strerror(errno)))") }
            s.journalBytes = bytes.count
        }
        // The rewrite briefly held a copy of the whole spool; give that memory back to the system.
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
        s.stats.pendingBytes -= e.line.count
        if s.orderHead > 1024 && s.orderHead * 2 > s.order.count {
            s.order.removeFirst(s.orderHead)
            s.orderHead = 0
        }
    }

    private static func write(_ bytes: [UInt8], to s: inout State) {
        guard !bytes.isEmpty, s.fd >= 0 else { return }
        // write(2) into the page cache survives a killed process; fdatasync covers a host crash.
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(s.fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
        fdatasync(s.fd)
        s.journalBytes += bytes.count
    }

    /// Rebuilds the pending set from a journal; lines that do not parse (a torn tail) are skipped.
    static func replay(_ data: Data, into s: inout State) {
        let decoder = JSONCoding.decoder()
        var maxSeq: UInt64 = 0
        var pending: [UInt64: Entry] = [:]
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let tag = raw.first else { continue }
            let body = raw.dropFirst()
            switch tag {
            case UInt8(ascii: "N"):
                if let n = UInt64(String(decoding: body, as: UTF8.self).trimmingSpaces()) {
                    s.stats.nextSeq = max(s.stats.nextSeq, n)
                }
            case UInt8(ascii: "+"):
                guard let event = try? decoder.decode(PullEvent.self, from: Data(body)) else { continue }
                pending[event.seq] = Entry(line: Array(raw) + [UInt8(ascii: "\n")])
                maxSeq = max(maxSeq, event.seq)
            case UInt8(ascii: "-"):
                if let seq = UInt64(String(decoding: body, as: UTF8.self)) {
                    pending.removeValue(forKey: seq)
                    maxSeq = max(maxSeq, seq)
                }
            default:
                continue
            }
        }
        s.stats.nextSeq = max(s.stats.nextSeq, maxSeq + 1)
        s.pending = pending
        s.order = pending.keys.sorted()
        s.stats.pending = pending.count
        s.stats.pendingBytes = pending.values.reduce(0) { $0 + $1.line.count }
    }
}
