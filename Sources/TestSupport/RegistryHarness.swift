import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Real CNCF registries (`docker-registry` from Debian) on loopback, one per test, stopped by PID.
public final class RegistryHarness: @unchecked Sendable {
    public let dir: String
    private var processes: [Process] = []
    private var byName: [String: Process] = [:]

    public init(_ name: String) {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-reg-\(name)-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// Stops what the test started and removes its directory; `REGWATCH_KEEP_TEST_DIRS=1` keeps the
    /// directories (logs, databases) to look at after a failure.
    deinit {
        stopAll()
        guard unmountAll(), ProcessInfo.processInfo.environment["REGWATCH_KEEP_TEST_DIRS"] != "1" else { return }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Detaches every mount left under the directory (dockerd bind-mounts its data root onto itself and
    /// leaves it behind when killed). Returns whether none is left.
    @discardableResult
    public func unmountAll() -> Bool {
        func mounted() -> [String] {
            guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
            return info.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                guard fields.count > 4 else { return nil }
                let point = String(fields[4])
                return point == dir || point.hasPrefix(dir + "/") ? point : nil
            }
        }
        for point in mounted().sorted(by: >) { umount2(point, Int32(MNT_DETACH)) }
        return mounted().isEmpty
    }

    public func stopAll() {
        for p in processes { Self.stop(p) }
        processes = []
    }

    /// SIGTERM, then SIGKILL after two seconds; never waits forever.
    public static func stop(_ p: Process) {
        guard !hasExited(p) else { return }
        p.terminate()
        for _ in 0..<40 where !hasExited(p) { usleep(50_000) }
        if !hasExited(p) { kill(p.processIdentifier, SIGKILL) }
    }

    /// Whether `process` has exited, read from /proc (gone or a zombie): Foundation's `isRunning` depends
    /// on its own SIGCHLD handling, which lags on a loaded machine (a child seen as a zombie for 5 s).
    public static func hasExited(_ process: Process?) -> Bool {
        guard let pid = process?.processIdentifier, pid > 0 else { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    /// A port nobody listens on right now, below the kernel's ephemeral range (32768 and up).
    ///
    /// Ports handed out by `bind(0)` come from the range outgoing connections use as source ports, and
    /// a second test could be handed the same one between our close and the server's bind. Counting up
    /// from a base in 20000–31999 gives every caller in this process a different port, and one no
    /// client connection takes.
    public static func freePort() -> Int {
        portLock.lock()
        defer { portLock.unlock() }
        for _ in 0..<12_000 {
            let port = 20_000 + nextPort % 12_000
            nextPort += 1
            if canBind(port) { return port }
        }
        fatalError("no free port in 20000-31999")
    }

    private static let portLock = NSLock()
    nonisolated(unsafe) private static var nextPort = Int(getpid()) * 37 % 12_000

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    public static func waitForPort(_ port: Int, seconds: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            close(fd)
            if ok { return true }
            usleep(50_000)
        }
        return false
    }

    /// Waits for a registry this harness started to accept connections: 30 s, because a Go binary's cold
    /// start on a loaded 2-core machine (the whole suite in parallel, Chromium included) took more than
    /// 15; a registry that exited is reported at once, with what it said.
    func awaitListening(_ registry: Process, name: String, port: Int) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if Self.waitForPort(port, seconds: 0.5) { return }
            if !registry.isRunning {
                let said = (try? String(contentsOfFile: "\(dir)/\(name).stderr", encoding: .utf8)) ?? ""
                throw HarnessError("registry \(name) exited (status \(registry.terminationStatus)) before listening on \(port): \(said.suffix(500))")
            }
        }
        throw HarnessError("registry \(name) did not listen on \(port) within 30 s")
    }

    /// Starts a registry; `extra` is YAML merged at the top level (auth, proxy) and `tls` adds certificates.
    public func startRegistry(name: String, extra: String = "", tls: (cert: String, key: String)? = nil) throws -> Int {
        let port = Self.freePort()
        var http = "http: {addr: \"127.0.0.1:\(port)\"}"
        if let tls { http = "http: {addr: \"127.0.0.1:\(port)\", tls: {certificate: \"\(tls.cert)\", key: \"\(tls.key)\"}}" }
        let config = """
        version: 0.1
        log: {level: error}
        storage: {filesystem: {rootdirectory: "\(dir)/\(name)-data"}, delete: {enabled: true}}
        \(http)
        \(extra)
        """
        let path = "\(dir)/\(name).yml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let registry = try start("/usr/bin/docker-registry", ["serve", path], stderrPath: "\(dir)/\(name).stderr")
        byName[name] = registry
        try awaitListening(registry, name: name, port: port)
        return port
    }

    /// Starts a registry inside network namespace `netns` on its loopback, serving `name`'s storage
    /// (fill it first with ``startRegistry(name:extra:tls:)`` on the host and ``stop(name:)``).
    /// `extra` is YAML merged at the top level (a `proxy:` makes it a pull-through cache); with
    /// `accessLog`, requests are logged (level info) to that file.
    public func startRegistry(name: String, netns: String, port: Int, extra: String = "", accessLog: String? = nil) throws {
        let path = "\(dir)/\(name)-ns.yml"
        try """
        version: 0.1
        log: {level: \(accessLog == nil ? "error" : "info"), accesslog: {disabled: \(accessLog == nil)}}
        storage: {filesystem: {rootdirectory: "\(dir)/\(name)-data"}, delete: {enabled: true}}
        http: {addr: "127.0.0.1:\(port)"}
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        try restartRegistry(name: name, netns: netns, port: port, accessLog: accessLog)
    }

    /// Starts a registry of ``startRegistry(name:netns:port:extra:accessLog:)`` again (same port, storage and log).
    public func restartRegistry(name: String, netns: String, port: Int, accessLog: String? = nil) throws {
        let args = ["--net=/run/netns/\(netns)", "/usr/bin/docker-registry", "serve", "\(dir)/\(name)-ns.yml"]
        if let accessLog {
            if !FileManager.default.fileExists(atPath: accessLog) { FileManager.default.createFile(atPath: accessLog, contents: nil) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = args
            let log = FileHandle(forWritingAtPath: accessLog)!
            log.seekToEndOfFile()
            p.standardOutput = log
            p.standardError = log
            try p.run()
            processes.append(p)
            byName[name] = p
        } else {
            byName[name] = try start("/usr/bin/nsenter", args)
        }
        for _ in 0..<150 {
            if (try? Self.spawnAndWait("/usr/bin/nsenter", ["--net=/run/netns/\(netns)", "/usr/bin/curl", "-sf", "http://127.0.0.1:\(port)/v2/"]))?.0 == 0 { return }
            usleep(100_000)
        }
        throw HarnessError("registry \(name) did not listen on \(port) in \(netns)")
    }

    /// Starts a stopped registry again with the same config (same port, same storage).
    public func restartRegistry(name: String, port: Int) throws {
        let registry = try start("/usr/bin/docker-registry", ["serve", "\(dir)/\(name).yml"], stderrPath: "\(dir)/\(name).stderr")
        byName[name] = registry
        try awaitListening(registry, name: name, port: port)
    }

    public func stop(name: String) {
        guard let p = byName.removeValue(forKey: name) else { return }
        Self.stop(p)
    }

    @discardableResult
    public func start(_ executable: String, _ args: [String], cwd: String? = nil, stderrPath: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        if let stderrPath {
            FileManager.default.createFile(atPath: stderrPath, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: stderrPath)
        } else {
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        }
        try p.run()
        processes.append(p)
        return p
    }

    /// Starts `faultproxy.py` in front of `upstream` (see the script for the modes) and returns its port.
    public func startFaultProxy(upstream: Int, mode: String) throws -> Int {
        let port = Self.freePort()
        guard let script = Bundle.module.path(forResource: "faultproxy", ofType: "py") else { throw HarnessError("faultproxy.py not bundled") }
        try start("/usr/bin/python3", [script, "\(port)", "http://127.0.0.1:\(upstream)", mode])
        guard Self.waitForPort(port) else { throw HarnessError("fault proxy did not listen on \(port)") }
        return port
    }

    /// Starts a registry with token auth and its token server (`tokenserver.py`) for `user:password`;
    /// `deniedRepository` is granted nothing. Returns the registry's port.
    public func startTokenRegistry(name: String, credentials: String, deniedRepository: String? = nil) throws -> Int {
        let signing = try certificate(days: 30, name: "\(name)-token", cn: "regwatch-token-signer", san: "DNS:token.test")
        let tokenPort = Self.freePort()
        guard let script = Bundle.module.path(forResource: "tokenserver", ofType: "py") else { throw HarnessError("tokenserver.py not bundled") }
        try start("/usr/bin/python3", [script, "\(tokenPort)", signing.key, signing.cert, "regwatch-test-issuer", credentials] + (deniedRepository.map { [$0] } ?? []))
        guard Self.waitForPort(tokenPort) else { throw HarnessError("token server did not listen on \(tokenPort)") }
        return try startRegistry(name: name, extra: """
        auth: {token: {realm: "http://127.0.0.1:\(tokenPort)/token", service: regwatch-test-registry, issuer: regwatch-test-issuer, rootcertbundle: "\(signing.cert)"}}
        """)
    }

    /// A self-signed certificate for `registry.test`, `localhost` and 127.0.0.1, valid for `days`.
    public func certificate(days: Int, name: String = "cert", cn: String = "registry.test", san: String = "DNS:registry.test,DNS:localhost,IP:127.0.0.1") throws -> (cert: String, key: String) {
        let cert = "\(dir)/\(name).crt", key = "\(dir)/\(name).key"
        try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(cn)", "-addext", "subjectAltName=\(san)",
                                     "-days", "\(days)", "-keyout", key, "-out", cert])
        return (cert, key)
    }

    /// A private CA for this harness (created on first use): its certificate file is what `ca:` points at.
    public func certificateAuthority() throws -> String {
        let cert = "\(dir)/ca.crt"
        if !FileManager.default.fileExists(atPath: cert) {
            try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=regwatch-test-ca", "-days", "30",
                                         "-keyout", "\(dir)/ca.key", "-out", cert])
        }
        return cert
    }

    /// A server certificate signed by the harness CA. `days: 0` makes one that expires within the second.
    public func signedCertificate(name: String, days: Int, san: String = "DNS:registry.test,DNS:localhost,IP:127.0.0.1") throws -> (cert: String, key: String) {
        let ca = try certificateAuthority()
        let key = "\(dir)/\(name).key", csr = "\(dir)/\(name).csr", cert = "\(dir)/\(name).crt", ext = "\(dir)/\(name).ext"
        try "subjectAltName=\(san)\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try run("/usr/bin/openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=registry.test", "-keyout", key, "-out", csr])
        try run("/usr/bin/openssl", ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", "\(dir)/ca.key", "-CAcreateserial", "-days", "\(days)",
                                     "-extfile", ext, "-out", cert])
        return (cert, key)
    }

    public func htpasswd(user: String, password: String) throws -> String {
        let path = "\(dir)/htpasswd"
        try run("/usr/bin/htpasswd", ["-Bbc", path, user, password])
        return path
    }

    /// Pushes a tiny but real image (one gzip tar layer holding one file, its config, a manifest) with the
    /// curl CLI, so real clients (dockerd, containerd) can pull and unpack it.
    public func pushImage(port: Int, repository: String, tag: String, user: String? = nil) throws {
        let work = "\(dir)/img-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(work)/root", withIntermediateDirectories: true)
        try "\(repository):\(tag)\n".write(toFile: "\(work)/root/hello.txt", atomically: true, encoding: .utf8)
        try run("/bin/tar", ["--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "\(work)/layer.tar", "-C", "\(work)/root", "hello.txt"])
        let diffID = try run("/usr/bin/sha256sum", ["\(work)/layer.tar"]).split(separator: " ")[0]
        try run("/bin/gzip", ["-n", "-k", "\(work)/layer.tar"])
        let config = Array("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:\(diffID)\"]}}".utf8)
        FileManager.default.createFile(atPath: "\(work)/config.json", contents: Data(config))
        var auth: [String] = []
        if let user { auth = ["-u", user] }
        func upload(_ path: String) throws -> (digest: Substring, size: Int) {
            let digest = try run("/usr/bin/sha256sum", [path]).split(separator: " ")[0]
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            // Start an upload, then PUT the bytes to the location it returns (distribution 2.8 ignores a POST body).
            let headers = try run("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"] + auth + ["http://127.0.0.1:\(port)/v2/\(repository)/blobs/uploads/"])
            guard let locationLine = headers.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("location:") }) else {
                throw HarnessError("no upload location in: \(headers)")
            }
            var location = locationLine.dropFirst("location:".count).trimmingCharacters(in: .whitespaces)
            if location.hasPrefix("/") { location = "http://127.0.0.1:\(port)\(location)" }
            location += (location.contains("?") ? "&" : "?") + "digest=sha256:\(digest)"
            try run("/usr/bin/curl", ["-sf", "-X", "PUT"] + auth + ["--data-binary", "@\(path)", "-H", "Content-Type: application/octet-stream", location])
            return (digest, size)
        }
        let layer = try upload("\(work)/layer.tar.gz")
        let cfg = try upload("\(work)/config.json")
        let manifest = """
        {"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
         "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":\(cfg.size),"digest":"sha256:\(cfg.digest)"},
         "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":\(layer.size),"digest":"sha256:\(layer.digest)"}]}
        """
        try run("/usr/bin/curl", ["-sf", "-X", "PUT"] + auth + ["-H", "Content-Type: application/vnd.docker.distribution.manifest.v2+json",
                                  "--data-binary", manifest, "http://127.0.0.1:\(port)/v2/\(repository)/manifests/\(tag)"])
    }

    /// Runs a short command to completion and returns its stdout; throws on a non-zero exit.
    /// posix_spawn + waitpid directly: Foundation's Process could leave `waitUntilExit` hanging on a
    /// child that had already exited when spawned from a test thread.
    @discardableResult
    public func run(_ executable: String, _ args: [String]) throws -> String {
        let (status, output) = try Self.spawnAndWait(executable, args)
        guard status == 0 else { throw HarnessError("\(executable) \(args.joined(separator: " ")) exited \(status)") }
        return output
    }

    /// Writes an executable script from a child process: written by this process, its open descriptor
    /// could be inherited by a process another test forks meanwhile and then hold the file, so that
    /// running it fails with ETXTBSY for as long as that process lives.
    public static func writeExecutable(_ text: String, to path: String) throws {
        let (status, _) = try spawnAndWait("/bin/sh", ["-c", "printf '%s' \"$2\" > \"$1\" && chmod 755 \"$1\"", "sh", path, text])
        guard status == 0 else { throw HarnessError("cannot write \(path)") }
    }

    /// Runs a command to completion; stdout is returned, stderr goes to `stderrPath` (or /dev/null).
    public static func spawnAndWait(_ executable: String, _ args: [String], stderrPath: String? = nil, environment: [String: String]? = nil) throws -> (Int32, String) {
        let (status, output, _) = try spawnAndMeasure(executable, args, stderrPath: stderrPath, environment: environment)
        return (status, output)
    }

    /// Like ``spawnAndWait`` and also returns the child's resource usage (CPU time, peak RSS) from wait4.
    /// A child still running after `deadline` (a `curl` to a server that accepts and never answers) is
    /// killed and reported, so a test fails instead of hanging.
    public static func spawnAndMeasure(_ executable: String, _ args: [String], stderrPath: String? = nil, environment: [String: String]? = nil,
                                       deadline: Duration = .seconds(300)) throws -> (Int32, String, rusage) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe failed") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Children get default signal dispositions and an empty mask, whatever the test runner blocks.
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = envp.map { e in posix_spawn(&pid, executable, &actions, &attr, argv, e) } ?? posix_spawn(&pid, executable, &actions, &attr, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw HarnessError("cannot run \(executable): \(String(cString: strerror(rc)))")
        }
        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let end = ContinuousClock.now + deadline
        var overdue = false
        while true {
            var item = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let left = end - ContinuousClock.now
            let ready = left > .zero ? poll(&item, 1, Int32(clamping: left.components.seconds * 1000 + 1)) : 0
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 {
                overdue = true
                kill(pid, SIGKILL)
                break
            }
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n] } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(fds[0])
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        if overdue { throw HarnessError("\(executable) \(args.joined(separator: " ")) did not finish within \(deadline); killed") }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exit, String(decoding: output, as: UTF8.self), usage)
    }
}

public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
