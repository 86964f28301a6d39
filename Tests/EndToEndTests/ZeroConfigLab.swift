import Foundation
import RegwatchTestSupport

/// A host with no regwatch config: a network namespace with only `lo` (a registry serving
/// `library/alpine:latest` on 5000, nothing on 5009) and a resolver that answers nothing, so no name
/// can reach the outside. The agent runs in a private mount namespace where the lab's files are
/// bind-mounted over `/etc/docker`, `/root/.docker` and `/etc/containers`, or with `--host-root`.
final class ZeroConfigLab: @unchecked Sendable {
    let h = RegistryHarness("zeroconf")
    let ns = "rw-zc\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
    var dir: String { h.dir }
    let alive = 5000, dead = 5009
    /// Mount points this lab made on the real host (removed again at the end).
    private var madeDirs: [String] = []

    /// Passwords the lab's credentials carry: none may appear in any output.
    static let secrets = ["hub-secret-771", "mirror-secret-772", "helper-secret-773", "k3s-secret-774"]

    init() throws {
        try h.run("/usr/sbin/ip", ["netns", "add", ns])
        try h.run("/usr/sbin/ip", ["-n", ns, "link", "set", "lo", "up"])
        // A free port can be taken between the check and the bind on a busy machine: try again.
        var started: Int?
        for attempt in 1...3 where started == nil {
            do { started = try h.startRegistry(name: "hub") } catch where attempt < 3 { h.stop(name: "hub") }
        }
        let fill = started!
        try h.pushImage(port: fill, repository: "library/alpine", tag: "latest")
        h.stop(name: "hub")
        try h.startRegistry(name: "hub", netns: ns, port: alive)
        try "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".write(toFile: "\(dir)/resolv.conf", atomically: true, encoding: .utf8)
        // Helpers as Docker runs them: one that answers, one that hangs (with a child of its own).
        try write("\(dir)/bin/docker-credential-good", """
            #!/bin/sh
            read server
            echo '{"ServerURL":"'"$server"'","Username":"helperuser","Secret":"helper-secret-773"}'
            """, mode: 0o755)
        try write("\(dir)/bin/docker-credential-hang", "#!/bin/sh\nsleep 61.5\necho '{}'\n", mode: 0o755)
    }

    deinit {
        h.stopAll()
        _ = try? h.run("/usr/sbin/ip", ["netns", "del", ns])
        for d in madeDirs.reversed() { rmdir(d) }
    }

    func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if mode & 0o111 != 0 { return try RegistryHarness.writeExecutable(text, to: path) }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode_t(mode))
    }

    /// daemon.json with the dead mirror first, and a config.json with a Hub login, a mirror login and three helpers.
    func writeDockerFiles(under root: String) throws {
        try write("\(root)/etc/docker/daemon.json", """
            {"registry-mirrors": ["http://127.0.0.1:\(dead)", "http://127.0.0.1:\(alive)"], "insecure-registries": ["127.0.0.1:\(alive)"]}
            """)
        let hub = Data("hubuser:hub-secret-771".utf8).base64EncodedString()
        try write("\(root)/root/.docker/config.json", """
            {"auths": {"https://index.docker.io/v1/": {"auth": "\(hub)"},
                       "127.0.0.1:\(alive)": {"username": "mirroruser", "password": "mirror-secret-772"}},
             "credHelpers": {"slow.registry.test": "hang", "gone.registry.test": "not-installed", "helped.registry.test": "good"}}
            """, mode: 0o600)
    }

    /// Makes `path` on the real host if it is missing, so a bind mount has somewhere to go.
    func mountPoint(_ path: String) throws {
        var parts: [String] = []
        for c in path.split(separator: "/") {
            parts.append(String(c))
            let p = "/" + parts.joined(separator: "/")
            if !FileManager.default.fileExists(atPath: p) {
                try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: false)
                madeDirs.append(p)
            }
        }
    }

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any]) ?? [:] }
        var findings: [[String: Any]] { (json["discovery"] as? [String: Any])?["findings"] as? [[String: Any]] ?? [] }

        func finding(_ kind: String, _ subject: String) -> [String: Any]? {
            findings.first { $0["kind"] as? String == kind && $0["subject"] as? String == subject }
        }
    }

    /// Runs `regwatch-agent ARGS` in the namespace with `mounts` (source -> target) bind-mounted, with
    /// debug logging and the lab's helpers first on `PATH`.
    func agent(_ args: [String], mounts: [(String, String)]) throws -> Run {
        for (_, target) in mounts { try mountPoint(target) }
        let binds = ([("\(dir)/resolv.conf", "/etc/resolv.conf")] + mounts).map { "mount --bind '\($0.0)' '\($0.1)'" }
        let command = (["/usr/bin/nsenter", "--net=/run/netns/\(ns)", CLI.binary("regwatch-agent")] + args).map { "'\($0)'" }.joined(separator: " ")
        var env = ProcessInfo.processInfo.environment
        env["REGWATCH_LOG_LEVEL"] = "debug"
        env["PATH"] = "\(dir)/bin:" + (env["PATH"] ?? "/usr/bin:/bin")
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE"] { env[k] = nil }
        let errPath = "\(dir)/agent-\(UUID().uuidString).err"
        let (status, out) = try RegistryHarness.spawnAndWait("/usr/bin/unshare", ["-m", "/bin/sh", "-c", (binds + ["exec " + command]).joined(separator: " && ")],
                                                             stderrPath: errPath, environment: env)
        return Run(status: status, stdout: out, stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }

    /// Processes still running a command line that contains `text` (a helper the agent should have killed).
    static func running(_ text: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { Int($0) != nil }.compactMap { pid in
            guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? line : nil
        }
    }
}
