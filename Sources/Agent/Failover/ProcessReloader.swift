import FoundationEssentials
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// Reloads dockerd or CRI-O the way the host runs them: `signal` sends SIGHUP to the daemon (found by
/// its process name in /proc), `systemctl` runs `systemctl reload UNIT`, `none` does nothing (the
/// operator reloads, or the runtime re-reads by itself).
public struct ProcessReloader: RuntimeReloading {
    /// dockerd's pid file, preferred to a search by name (a host may run more than one dockerd).
    let dockerPidFile: String?

    public init(dockerPidFile: String? = nil) {
        self.dockerPidFile = dockerPidFile
    }

    public func reload(_ runtime: RuntimeKind, mode: AgentConfig.Docker.Reload) throws(RuntimeConfigError) {
        let (process, unit) = runtime == .crio ? ("crio", "crio") : ("dockerd", "docker")
        switch mode {
        case .none:
            return
        case .signal:
            let pids = runtime == .docker ? dockerPIDs() : Self.pids(named: process)
            guard !pids.isEmpty else { throw RuntimeConfigError(path: "/proc", message: "no \(process) process to send SIGHUP to") }
            for pid in pids where kill(pid, SIGHUP) != 0 {
                throw RuntimeConfigError(path: "/proc/\(pid)", message: "SIGHUP to \(process): \(String(cString: strerror(errno)))")
            }
        case .systemctl:
            var pid: pid_t = 0
            guard spawnLock.withLock({ _ in ChildSpawn.spawn("/bin/systemctl", ["reload", unit], pid: &pid) }) == 0 else {
                throw RuntimeConfigError(path: "/bin/systemctl", message: "cannot run systemctl reload \(unit)")
            }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            guard status == 0 else { throw RuntimeConfigError(path: "/bin/systemctl", message: "systemctl reload \(unit) failed (status \(status))") }
        }
    }

    /// The pid in `dockerPidFile` when it names a running dockerd, else every dockerd.
    func dockerPIDs() -> [pid_t] {
        if let path = dockerPidFile, let text = try? String(contentsOfFile: path, encoding: .utf8),
           let pid = pid_t(text.trimmed()),
           let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
           comm.trimmed() == "dockerd" {
            return [pid]
        }
        return Self.pids(named: "dockerd")
    }

    /// PIDs whose `/proc/PID/comm` is `name`.
    static func pids(named name: String) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { e -> pid_t? in
            guard let pid = pid_t(e),
                  let comm = try? String(contentsOfFile: "/proc/\(e)/comm", encoding: .utf8) else { return nil }
            return comm.trimmed() == name ? pid : nil
        }
    }
}
