import FoundationEssentials
import Glibc
import RegwatchShared

/// Runs `docker-credential-NAME get` found in `searchPath` (real directories, under the host root when
/// there is one). The helper gets its own process group so a timeout kills whatever it started too.
public struct ProcessCredentialHelper: CredentialHelperRunning {
    public let searchPath: [String]

    public init(searchPath: [String]) {
        self.searchPath = searchPath
    }

    public func get(helper: String, serverURL: String, timeout: Duration) async -> CredentialHelper.Outcome {
        let name = "docker-credential-\(helper)"
        let candidates: [String] = searchPath.map { "\($0)/\(name)" }
        guard let path = candidates.first(where: { (p: String) -> Bool in access(p, X_OK) == 0 }) else {
            return .missing("\(name) is not installed (looked in \(searchPath.joined(separator: ":")))")
        }
        return await withCheckedContinuation { continuation in
            OSThread.detach(name: "rw-credhelper") {
                continuation.resume(returning: Self.run(path, input: serverURL + "\n", timeout: timeout))
            }
        }
    }

    static func run(_ path: String, input: String, timeout: Duration) -> CredentialHelper.Outcome {
        // ETXTBSY: the helper was just written (an upgrade) and a process forked meanwhile still holds it
        // open for writing; that clears within moments.
        for _ in 0..<20 {
            let outcome = attempt(path, input: input, timeout: timeout)
            guard case .failed(let why) = outcome, why.hasSuffix(String(cString: strerror(ETXTBSY))) else { return outcome }
            usleep(25_000)
        }
        return attempt(path, input: input, timeout: timeout)
    }

    static func attempt(_ path: String, input: String, timeout: Duration) -> CredentialHelper.Outcome {
        var stdin: [Int32] = [-1, -1], stdout: [Int32] = [-1, -1], stderr: [Int32] = [-1, -1]
        var pid: pid_t = 0
        let rc: Int32 = spawnLock.withLock { _ -> Int32 in
            guard makePipe(&stdin), makePipe(&stdout, nonBlocking: true), makePipe(&stderr, nonBlocking: true) else { return errno }
            return ChildSpawn.spawn(path, ["get"], dup2: [(stdin[0], 0), (stdout[1], 1), (stderr[1], 2)], newProcessGroup: true, pid: &pid)
        }
        for fd in [stdin[0], stdout[1], stderr[1]] where fd >= 0 { close(fd) }
        guard rc == 0 else {
            for fd in [stdin[1], stdout[0], stderr[0]] where fd >= 0 { close(fd) }
            return .failed("cannot start \(path): \(String(cString: strerror(rc)))")
        }
        // A helper that exits before reading must not kill the agent with SIGPIPE: EPIPE is enough.
        signal(SIGPIPE, SIG_IGN)
        let bytes = Array(input.utf8)
        _ = bytes.withUnsafeBytes { write(stdin[1], $0.baseAddress, $0.count) }
        close(stdin[1])

        var out: [UInt8] = [], err: [UInt8] = []
        var open: Set<Int32> = [stdout[0], stderr[0]]
        let deadline = ContinuousClock.now + timeout
        var timedOut = false, tooLong = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !open.isEmpty {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { timedOut = true; break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ms = Int32(min(left.milliseconds + 1, 1000))
            if poll(&fds, nfds_t(fds.count), ms) < 0 && errno != EINTR { timedOut = true; break }
            for f in fds where f.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if f.fd == stdout[0] { out += buffer[0..<n] } else { err += buffer[0..<n] }
                    if out.count + err.count > 1 << 20 { tooLong = true; open.removeAll(); break }
                } else if n == 0 || errno != EAGAIN {
                    open.remove(f.fd)
                }
            }
        }
        close(stdout[0]); close(stderr[0])
        // Output closed, or time is up: the helper gets what is left of the timeout to exit, then it and
        // its process group are killed (the pid too, in case it left the group).
        var status: Int32 = 0
        var exited = false
        var statusKnown = true
        while !timedOut && !tooLong && !exited {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { exited = true; break }
            // Reaped elsewhere (a host process that waits for every child): the exit status is lost.
            if r < 0 && errno == ECHILD { exited = true; statusKnown = false; break }
            if r < 0 && errno != EINTR { break }
            if ContinuousClock.now >= deadline { timedOut = true; break }
            usleep(10_000)
        }
        if !exited {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if timedOut { return .timedOut }
        if tooLong { return .failed("answered more than 1 MiB") }
        if !statusKnown {
            guard let answer = CredentialHelper.parseAnswer(out) else { return .failed("exited, status unknown, with no credentials JSON") }
            return .found(username: answer.username, secret: answer.secret)
        }
        let normal = status & 0x7f == 0, code = (status >> 8) & 0xff
        if normal && code == 0 {
            guard let answer = CredentialHelper.parseAnswer(out) else { return .failed("answered something that is not credentials JSON") }
            return .found(username: answer.username, secret: answer.secret)
        }
        // What a failing helper says (never its stdout of a success, which carries the secret).
        let message = String(decoding: err.isEmpty ? out : err, as: UTF8.self).trimmed()
        // The helpers' own wording for "nothing stored for this server".
        if message.lowercased().contains("credentials not found") { return .none }
        let how = normal ? "exit \(code)" : "signal \(status & 0x7f)"
        return .failed("\(how)\(message.isEmpty ? "" : ": \(String(message.split(separator: "\n").first ?? "").prefix(200))")")
    }
}
