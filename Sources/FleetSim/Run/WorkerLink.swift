import FoundationEssentials
import Glibc
import RegwatchAgent
import RegwatchShared
import Synchronization

/// One worker process of a fleet larger than one process can hold (each agent costs four or five file
/// descriptors, see ``FleetSimulator``). The worker is this same
/// executable with `--worker`; it takes commands on stdin (``Command``) and prints its figures as one JSON
/// line on stdout every 250 ms, and once more when told to stop.
final class WorkerLink: Sendable {
    enum Command: Sendable {
        case faults(Bool), events(Bool), epoch(Int), stop

        var line: String {
            switch self {
            case .faults(let on): "faults \(on ? 1 : 0)"
            case .events(let on): "events \(on ? 1 : 0)"
            case .epoch(let n): "epoch \(n)"
            case .stop: "stop"
            }
        }

        init?(line: Substring) {
            let f = line.split(separator: " ")
            switch (f.first, f.count == 2 ? Int(f[1]) : nil) {
            case ("faults", let n?): self = .faults(n == 1)
            case ("events", let n?): self = .events(n == 1)
            case ("epoch", let n?): self = .epoch(n)
            case ("stop", nil) where f.count == 1: self = .stop
            default: return nil
            }
        }
    }

    let pid: pid_t
    private let input: Int32
    private let reader: IOThread
    /// Shared with the reader thread.
    private final class State: Sendable {
        let figures = Mutex<(latest: ShardStats?, failure: String?)>((nil, nil))
        /// Set before the worker is told to stop: its output ending is then no failure.
        let stopping = Atomic<Bool>(false)
    }
    private let state = State()

    /// Starts `/proc/self/exe ARGS`, its stdin and stdout on pipes.
    init(arguments: [String]) throws(SimError) {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        var pid: pid_t = 0
        let rc = try spawnLock.withLock { _ throws(SimError) -> Int32 in
            guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw .aborted("pipe: \(String(cString: strerror(errno)))") }
            // Close-on-exec, so no other child inherits them; dup2 onto the worker's stdin and stdout clears it there.
            for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return ChildSpawn.spawn("/proc/self/exe", arguments, dup2: [(toChild[0], 0), (fromChild[1], 1)], pid: &pid)
        }
        Glibc.close(toChild[0])
        Glibc.close(fromChild[1])
        guard rc == 0 else { throw .aborted("cannot start a worker process: \(String(cString: strerror(rc)))") }
        self.pid = pid
        input = toChild[1]
        let output = fromChild[0]
        let state = state
        reader = IOThread(name: "fleetsim-link") {
            let decoder = WorkerLink.decoder()
            WorkerLink.readLines(output) { line in
                do {
                    let stats = try decoder.decode(ShardStats.self, from: Data(line))
                    state.figures.withLock { $0.latest = stats }
                } catch {
                    state.figures.withLock { $0.failure = "a worker printed something that is not its figures: \(String(decoding: line.prefix(120), as: UTF8.self))" }
                }
                return true
            }
            if !state.stopping.load(ordering: .relaxed) {
                state.figures.withLock { $0.failure = $0.failure ?? "a worker process ended before it was told to stop" }
            }
            Glibc.close(output)
        }
    }

    /// The worker's latest figures (nil before its first line).
    var latest: ShardStats? { state.figures.withLock { $0.latest } }
    /// Why its figures cannot be trusted any more (it died, or printed something else), if so.
    var failure: String? { state.figures.withLock { $0.failure } }

    func send(_ command: Command) {
        let bytes = Array((command.line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
    }

    /// Stops the worker and returns its final figures.
    func finish() async -> ShardStats? {
        state.stopping.store(true, ordering: .relaxed)
        send(.stop)
        Glibc.close(input)
        await reader.finished()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return latest
    }

    /// Calls `body` with each line read from `fd` (without its newline) until end of file, an error, or
    /// `body` returning false.
    static func readLines(_ fd: Int32, _ body: ([UInt8]) -> Bool) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            buffer.append(contentsOf: chunk[0..<n])
            while let nl = buffer.firstIndex(of: 10) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                guard body(line) else { return }
            }
        }
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

/// The worker side: plays agents `first ..< first + count` of the fleet and talks to the coordinator over
/// stdin and stdout (``WorkerLink``).
public enum FleetWorker {
    public static func run(settings: SimSettings, first: Int, count: Int, startMs: Int64) async throws(SimError) {
        let verifier = try settings.commandVerifier()
        FleetSimulator.raiseFileLimit()
        let all = try SimIdentityFile(stateDir: settings.stateDir).load(count: first + count, prefix: settings.hostPrefix, zones: settings.zones, egresses: settings.egresses)
        let control = SimControl()
        let slice = try FleetSlice(settings: settings, agents: (first..<first + count).map { ($0, all[$0]) }, verifier: verifier, control: control, startMs: startMs)
        let stop = Atomic<Bool>(false)
        let commands = IOThread(name: "fleetsim-commands") {
            WorkerLink.readLines(0) { line in
                switch WorkerLink.Command(line: Substring(decoding: line, as: UTF8.self)) {
                case .faults(let on): control.faultsOn.store(on, ordering: .relaxed)
                case .events(let on): control.eventsOn.store(on, ordering: .relaxed)
                case .epoch(let n): control.epoch.store(n, ordering: .relaxed)
                case .stop, nil: return false
                }
                return true
            }
            // A coordinator that went away (EOF) stops its workers too.
            stop.store(true, ordering: .relaxed)
        }
        let encoder = WorkerLink.encoder()
        func emit(_ stats: ShardStats) {
            guard var line = try? encoder.encode(stats) else { return }
            line.append(10)
            line.withUnsafeBytes { p in
                var off = 0
                while off < p.count {
                    let n = write(1, p.baseAddress! + off, p.count - off)
                    if n <= 0 { if errno == EINTR { continue }; return }
                    off += n
                }
            }
        }
        while !stop.load(ordering: .relaxed) {
            emit(slice.stats())
            try? await Task.sleep(for: .milliseconds(250))
        }
        emit(await slice.stop())
        await commands.finished()
    }
}
