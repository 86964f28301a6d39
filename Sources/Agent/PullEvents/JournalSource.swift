import FoundationEssentials
import Logging
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// Pull failures from the systemd journal of the runtime units: `journalctl -o json -f -n 0 -u …`,
/// each message run through ``PullLogParser``.
///
/// Hosts without systemd (containers, minimal VMs) have no journal: the source is `absent` and checks
/// again every `recheckAbsent`. When journalctl exits it is restarted with backoff.
public struct JournalSource: PullEventSource {
    public let units: [String]
    public let recheckAbsent: Duration
    public let journalctl: String
    /// systemd's marker directory: present only when systemd is PID 1.
    public let systemdMarker: String
    /// The host's journal under a host root (`journalctl --root`); nil: this system's journal.
    public let journalRoot: String?
    let logger: Logger
    public var name: String { "journal" }

    public init(units: [String], recheckAbsent: Duration = .seconds(60), journalctl: String = "/usr/bin/journalctl",
                systemdMarker: String = "/run/systemd/system", journalRoot: String? = nil, logger: Logger) {
        self.journalRoot = journalRoot
        self.units = units
        self.recheckAbsent = recheckAbsent
        self.journalctl = journalctl
        self.systemdMarker = systemdMarker
        self.logger = logger
    }

    public func run(into sink: PullEventSink) async {
        var backoff = ReconnectBackoff(initialMs: 1000, maxMs: 60_000)
        while !Task.isCancelled {
            guard FileManager.default.fileExists(atPath: systemdMarker) else {
                sink.setStatus(name, .absent, "systemd is not running on this host (no \(systemdMarker))")
                try? await Task.sleep(for: recheckAbsent)
                continue
            }
            guard access(journalctl, X_OK) == 0 else {
                sink.setStatus(name, .absent, "\(journalctl) not found")
                try? await Task.sleep(for: recheckAbsent)
                continue
            }
            var args = ["-o", "json", "-f", "-n", "0", "--no-pager"]
            if let journalRoot { args += ["--root", journalRoot] }
            for u in units { args += ["-u", u.contains(".") ? u : "\(u).service"] }
            guard let child = ChildProcess.spawn(journalctl, args) else {
                sink.setStatus(name, .failing, "cannot start \(journalctl): \(String(cString: strerror(errno)))")
                try? await Task.sleep(for: .milliseconds(backoff.next()))
                continue
            }
            sink.setStatus(name, .active, "following \(units.joined(separator: ", "))")
            var lines = LineSplitter(maxLine: 256 * 1024)
            var sawOutput = false
            await withTaskCancellationHandler {
                for await chunk in FDChunkStream.chunks(fd: child.stdout, name: "rw-journal") {
                    sawOutput = true
                    sink.emit(lines.feed(chunk).compactMap(Self.event(fromJSONLine:)))
                }
            } onCancel: {
                child.terminate()
            }
            child.terminate()
            let status = child.wait()
            if Task.isCancelled { return }
            if sawOutput { backoff.reset() }
            sink.setStatus(name, .failing, "journalctl exited (\(status)); restarting")
            try? await Task.sleep(for: .milliseconds(backoff.next()))
        }
    }

    /// A pull failure from one `journalctl -o json` line, or nil.
    static func event(fromJSONLine line: String) -> PullEvent? {
        guard let obj = JSONValue.parse(line.utf8)?.object else { return nil }
        let message: String
        if let s = obj["MESSAGE"]?.string {
            message = s
        } else if let bytes = obj["MESSAGE"]?.array, bytes.allSatisfy({ $0.number != nil }) {
            // journald sends non-UTF-8 or very long messages as a byte array.
            message = String(decoding: bytes.map { UInt8(truncatingIfNeeded: Int($0.number ?? 0)) }, as: UTF8.self)
        } else {
            return nil
        }
        guard let failure = PullLogParser.parse(message) else { return nil }
        let at = obj["__REALTIME_TIMESTAMP"]?.string.flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1e6) } ?? Date()
        let unit = obj["_SYSTEMD_UNIT"]?.string?.replacing(".service", with: "") ?? "unknown"
        return PullEvent(failure: failure, at: at, source: "journal:\(unit)")
    }
}

/// A child process with its stdout on a pipe; started with posix_spawn (no shell) and reaped by ``wait()``.
final class ChildProcess: Sendable {
    let pid: pid_t
    let stdout: Int32

    private init(pid: pid_t, stdout: Int32) {
        self.pid = pid
        self.stdout = stdout
    }

    static func spawn(_ path: String, _ args: [String]) -> ChildProcess? {
        spawnLock.withLock { _ in spawnLocked(path, args) }
    }

    private static func spawnLocked(_ path: String, _ args: [String]) -> ChildProcess? {
        var fds: [Int32] = [-1, -1]
        guard makePipe(&fds) else { return nil }
        var pid: pid_t = 0
        let rc = ChildSpawn.spawn(path, args, dup2: [(fds[1], 1)], stdinDevNull: true, pid: &pid)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            errno = rc
            return nil
        }
        return ChildProcess(pid: pid, stdout: fds[0])
    }

    func terminate() { kill(pid, SIGTERM) }

    /// Reaps the child; returns a short description of how it ended.
    @discardableResult
    func wait() -> String {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7f == 0 { return "exit \((status >> 8) & 0xff)" }
        return "signal \(status & 0x7f)"
    }
}
