import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster (Debian's `postgresql` 15) on a loopback port, owned by one test:
/// `initdb` in a temp directory, run as the `postgres` user under root (initdb refuses root) or as the
/// current user otherwise (so `make test-unprivileged` runs the PostgreSQL suites too), password
/// authentication over TCP as an operator's server has it, stopped by PID and removed when released.
///
/// `fsync` is off: it only guards against an operating-system crash, which no test makes, and it
/// halves the suite's time on a slow disk. A `kill -9` of the server (``kill()``) loses nothing.
public final class PostgresServer: @unchecked Sendable {
    public static let user = "regwatch"
    public let dir: String
    public let port: Int
    /// The password of ``user``, also written to ``passwordFile`` (mode 0600).
    public let password: String
    public let passwordFile: String
    /// The network namespace the server runs in (`ip netns` name), nil for this process's own.
    public let netns: String?
    private let lock = NSLock()

    /// Where Debian keeps the server binaries (`postgresql-15`).
    static let binDir: String = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return "\(root)/\(versions.last ?? 15)/bin"
    }()

    /// Creates and starts a cluster with a database `regwatch` owned by ``user``.
    /// - Parameter netns: run the server in this network namespace (root only), on port 5432 of every
    ///   loopback address there, so each client can be given an address of its own to cut off.
    public init(_ name: String, netns: String? = nil) throws {
        // /tmp, not the per-user temp directory: every parent must be traversable by `postgres`.
        dir = "/tmp/rw-pg-\(name)-\(UUID().uuidString.prefix(8))"
        self.netns = netns
        port = netns == nil ? RegistryHarness.freePort() : 5432
        password = "pw-\(UUID().uuidString.prefix(12))"
        passwordFile = "\(dir)/password"
        try FileManager.default.createDirectory(atPath: "\(dir)/data", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createDirectory(atPath: socketDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(dir, 0o755)
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
        chmod(passwordFile, 0o600)
        let superuserPassword = "\(dir)/superuser-password"
        try Data(password.utf8).write(to: URL(fileURLWithPath: superuserPassword))
        if Self.asRoot {
            guard let pw = getpwnam("postgres") else { throw HarnessError("no postgres user: install Debian's postgresql package (make deps)") }
            for path in ["\(dir)/data", socketDir, superuserPassword] { chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        }
        let (status, output) = try Self.spawnAsServerUser([
            "\(Self.binDir)/initdb", "-D", "\(dir)/data", "-U", "postgres", "--pwfile", superuserPassword,
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        ], stderrPath: "\(dir)/initdb.log")
        guard status == 0 else { throw HarnessError("initdb exited \(status): \(output.suffix(500))") }
        try start()
        try psql("CREATE ROLE \(Self.user) LOGIN PASSWORD '\(password)'")
        try psql("CREATE DATABASE regwatch OWNER \(Self.user)")
    }

    deinit {
        stop()
        guard ProcessInfo.processInfo.environment["REGWATCH_KEEP_TEST_DIRS"] != "1" else { return }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The server's Unix socket (and its lock file), which only `postgres` may write.
    var socketDir: String { "\(dir)/run" }

    /// As root, the server's programs run as `postgres` (initdb refuses root); otherwise as this user.
    static let asRoot = getuid() == 0

    static func asServerUser(_ command: [String]) -> [String] {
        asRoot ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--reset-env", "--"] + command : command
    }

    static func spawnAsServerUser(_ command: [String], stderrPath: String) throws -> (Int32, String) {
        let full = asServerUser(command)
        return try RegistryHarness.spawnAndWait(full[0], Array(full.dropFirst()), stderrPath: stderrPath)
    }

    /// `postgres://regwatch@127.0.0.1:PORT/DB`, without the password (it is in ``passwordFile``).
    /// - Parameter host: another loopback address, for a server in a namespace (``init(_:netns:)``).
    public func url(database: String = "regwatch", sslmode: String? = nil, host: String = "127.0.0.1") -> String {
        "postgres://\(Self.user)@\(host):\(port)/\(database)" + (sslmode.map { "?sslmode=\($0)" } ?? "")
    }

    /// The postmaster's PID while it runs.
    public var pid: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return serverPID
    }

    /// A shell that runs the server and, once this test process is gone however it ended (a crash, a
    /// kill, an exit that runs no deinit), stops it (SIGINT) and removes its directory.
    private var watcher: Process?
    private var serverPID: Int32?

    /// Starts the server (again, after ``stop()`` or ``kill()``) and waits until it accepts queries.
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard RegistryHarness.hasExited(watcher) else { return }
        // After a kill -9 the old backends exit on their own once they see the postmaster gone; until
        // then the data directory is still in use, and a start fails: try again for 30 s.
        let deadline = Date().addingTimeInterval(30)
        let enter = netns.map { ["/usr/bin/nsenter", "--net=/run/netns/\($0)"] } ?? []
        let server = (enter + Self.asServerUser([
            "\(Self.binDir)/postgres", "-D", "\(dir)/data", "-p", "\(port)", "-k", socketDir,
            "-c", "listen_addresses=\(netns == nil ? "127.0.0.1" : "*")", "-c", "fsync=off", "-c", "max_connections=200",
        ])).map { "'\($0)'" }.joined(separator: " ")
        let script = """
            \(server) & pg=$!
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done
            kill -INT $pg 2>/dev/null; wait $pg
            kill -0 \(getpid()) 2>/dev/null || \(ProcessInfo.processInfo.environment["REGWATCH_KEEP_TEST_DIRS"] == "1" ? "true" : "rm -rf '\(dir)'")
            """
        while true {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", script]
            let log = FileHandle(forWritingAtPath: "\(dir)/server.log") ?? {
                FileManager.default.createFile(atPath: "\(dir)/server.log", contents: nil)
                return FileHandle(forWritingAtPath: "\(dir)/server.log")!
            }()
            log.seekToEndOfFile()
            p.standardError = log
            p.standardOutput = log
            try p.run()
            watcher = p
            if try awaitReady(p) {
                let pidFile = (try? String(contentsOfFile: "\(dir)/data/postmaster.pid", encoding: .utf8)) ?? ""
                guard let pid = pidFile.split(separator: "\n").first.flatMap({ Int32($0) }) else {
                    throw HarnessError("postgres on \(port) runs but wrote no postmaster.pid")
                }
                serverPID = pid
                return
            }
            guard Date() < deadline else {
                let said = (try? String(contentsOfFile: "\(dir)/server.log", encoding: .utf8)) ?? ""
                throw HarnessError("postgres on \(port) did not start: \(said.suffix(800))")
            }
            usleep(200_000)
        }
    }

    /// Whether the server accepts queries within 30 s; false when it exited (to be started again).
    private func awaitReady(_ p: Process) throws -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if RegistryHarness.hasExited(p) { return false }
            // Over the Unix socket, which a server in another network namespace shares with this one.
            let (status, _) = try RegistryHarness.spawnAndWait("\(Self.binDir)/pg_isready", ["-h", socketDir, "-p", "\(port)", "-t", "1"])
            if status == 0 { return true }
            usleep(100_000)
        }
        throw HarnessError("postgres on \(port) did not accept connections within 30 s")
    }

    /// A fast shutdown (SIGINT: open transactions roll back, sessions end), waiting until it is gone.
    public func stop() {
        signal(SIGINT, thenKillAfter: 10)
    }

    /// `kill -9` of the postmaster: what a crashed or OOM-killed server does to its clients.
    public func kill() {
        signal(SIGKILL, thenKillAfter: 10)
    }

    private func signal(_ sig: Int32, thenKillAfter seconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        guard let p = watcher, let pid = serverPID, !RegistryHarness.hasExited(p) else { return }
        Glibc.kill(pid, sig)
        for _ in 0..<Int(seconds * 20) where !RegistryHarness.hasExited(p) { usleep(50_000) }
        if !RegistryHarness.hasExited(p) { Glibc.kill(pid, SIGKILL) }
        p.waitUntilExit()
        serverPID = nil
    }

    /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let (status, output) = try Self.spawnAsServerUser([
            "\(Self.binDir)/psql", "-h", socketDir, "-p", "\(port)", "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-q", "-c", sql,
        ], stderrPath: "\(dir)/psql.stderr")
        guard status == 0 else {
            let said = (try? String(contentsOfFile: "\(dir)/psql.stderr", encoding: .utf8)) ?? ""
            throw HarnessError("psql exited \(status): \(said.suffix(500))")
        }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A fresh database owned by ``user``, so the tests of one suite share a server but not their data.
    public func createDatabase(_ name: String) throws -> String {
        try psql("CREATE DATABASE \(name) OWNER \(Self.user)")
        return url(database: name)
    }
}
