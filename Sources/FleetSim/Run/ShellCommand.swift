import Glibc

/// Runs an operator-given command line with `/bin/sh -c` and waits for it (the restart of the aggregator).
enum ShellCommand {
    /// The exit status (128 + signal when killed by one).
    static func run(_ command: String) throws(SimError) -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        defer { for p in argv { free(p) } }
        let rc = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
        guard rc == 0 else { throw .aborted("cannot run /bin/sh for the restart command: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
