import Glibc
import RegwatchAgent

/// Runs an operator-given command line with `/bin/sh -c` and waits for it (the restart of the aggregator).
enum ShellCommand {
    /// The exit status (128 + signal when killed by one).
    static func run(_ command: String) throws(SimError) -> Int32 {
        var pid: pid_t = 0
        let rc = spawnLock.withLock { _ in ChildSpawn.spawn("/bin/sh", ["-c", command], pid: &pid) }
        guard rc == 0 else { throw .aborted("cannot run /bin/sh for the restart command: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
