import FoundationEssentials
import Logging
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// Pull failures from a plain log file (kubelet or containerd off systemd, dockerd started by hand),
/// tailed like `tail -F`: starts at the end of an existing file, follows rotation by rename (the old
/// file is drained first, then the new one is read from its start) and by truncation (copytruncate).
///
/// Woken by inotify (``FileWatch``) on a thread of its own that sleeps in `poll` while the file is quiet:
/// an idle agent on every node of a fleet should not wake each second to `stat` a log. Every
/// `pollInterval` it reads anyway, for filesystems that send no notifications; where inotify itself is
/// unavailable (the per-user instance limit, a seccomp profile) it polls at that pace instead.
public struct LogFileSource: PullEventSource {
    public let path: String
    public let pollInterval: Duration
    let logger: Logger
    public var name: String { "file:\(path)" }

    public init(path: String, pollInterval: Duration = .seconds(10), logger: Logger) {
        self.path = path
        self.pollInterval = pollInterval
        self.logger = logger
    }

    public func run(into sink: PullEventSink) async {
        guard let watch = FileWatch(path: path) else {
            logger.notice("inotify unavailable; polling the log file", metadata: ["source": "\(name)", "poll": "\(pollInterval)", "error": "\(String(cString: strerror(errno)))"])
            await poll(into: sink)
            return
        }
        await watch.run(thread: "regwatch-tail") {
            var tail = FileTail(path: path)
            tail.open(fromStart: false)
            repeat {
                // Watch before reading, so a line written after the read wakes the next wait.
                watch.rearm()
                readNew(&tail, into: sink)
            } while watch.wait(timeout: pollInterval)
            tail.close()
        }
    }

    private func poll(into sink: PullEventSink) async {
        var tail = FileTail(path: path)
        tail.open(fromStart: false)
        while !Task.isCancelled {
            readNew(&tail, into: sink)
            try? await Task.sleep(for: pollInterval)
        }
        tail.close()
    }

    private func readNew(_ tail: inout FileTail, into sink: PullEventSink) {
        switch tail.poll() {
        case .absent: sink.setStatus(name, .absent, "no such file (yet)")
        case .active: sink.setStatus(name, .active, "tailing")
        case .failing(let reason): sink.setStatus(name, .failing, reason)
        }
        let now = Date()
        sink.emit(tail.takeLines().compactMap { line in
            PullLogParser.parse(line).map { PullEvent(failure: $0, at: now, source: name) }
        })
    }
}

/// The file-following state machine behind ``LogFileSource``; synchronous, so tests drive it step by step.
struct FileTail {
    enum State: Equatable { case absent, active, failing(String) }

    let path: String
    private var fd: Int32 = -1
    private var inode: (dev: UInt64, ino: UInt64)?
    private var offset: off_t = 0
    private var splitter = LineSplitter()
    private var lines: [String] = []
    /// Whether a file that appears later is read from its start (it is new, so all of it is news).
    private var sawAbsent = false

    init(path: String) { self.path = path }

    mutating func open(fromStart: Bool) {
        var st = stat()
        guard stat(path, &st) == 0 else { sawAbsent = true; return }
        let f = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard f >= 0 else { return }
        fd = f
        inode = (UInt64(st.st_dev), UInt64(st.st_ino))
        offset = fromStart ? 0 : lseek(f, 0, SEEK_END)
        if fromStart { lseek(f, 0, SEEK_SET) }
    }

    /// Reads what is new and follows rotation; returns the file's state.
    mutating func poll() -> State {
        if fd < 0 {
            open(fromStart: sawAbsent)
            if fd < 0 {
                sawAbsent = true
                return errno == ENOENT || errno == ENOTDIR ? .absent : .failing("cannot open: \(String(cString: strerror(errno)))")
            }
        }
        drain()
        var st = stat()
        if stat(path, &st) != 0 {
            // Renamed away and not recreated yet: keep what we have open; the new file is read from its start.
            sawAbsent = true
            return .active
        }
        if let current = inode, current.dev != UInt64(st.st_dev) || current.ino != UInt64(st.st_ino) {
            drain()
            flushPartialLine()
            close()
            open(fromStart: true)
            drain()
        } else if st.st_size < offset {
            // Truncated in place (copytruncate): start over.
            flushPartialLine()
            offset = lseek(fd, 0, SEEK_SET)
            drain()
        }
        return .active
    }

    mutating func takeLines() -> [String] {
        defer { lines.removeAll() }
        return lines
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        inode = nil
    }

    private mutating func drain() {
        guard fd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += off_t(n)
            lines += splitter.feed(buffer[0..<n])
        }
    }

    private mutating func flushPartialLine() {
        lines += splitter.feed([UInt8(ascii: "\n")]).filter { !$0.isEmpty }
    }
}
