import Glibc
import Synchronization

/// Held from making a child's pipes to its posix_spawn: pipe() and FD_CLOEXEC are two steps, and a child
/// spawned by another thread in between would inherit the pipe (a helper then never sees EOF).
package let spawnLock = Mutex<Void>(())

/// posix_spawn as the agent starts every child (call it under ``spawnLock`` with the pipes it wires):
/// an empty signal mask and default dispositions, since the agent blocks SIGTERM/SIGINT for its own
/// handling and a child must not inherit that.
package enum ChildSpawn {
    /// `dup2`: (agent fd, child fd) pairs; `stdinDevNull`: the child's stdin is /dev/null; `newProcessGroup`:
    /// the child leads its own group, so a kill of the group reaches what it started. Returns posix_spawn's result.
    package static func spawn(_ path: String, _ args: [String], dup2: [(Int32, Int32)] = [], stdinDevNull: Bool = false,
                      newProcessGroup: Bool = false, pid: inout pid_t) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (from, to) in dup2 { posix_spawn_file_actions_adddup2(&actions, from, to) }
        if stdinDevNull { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attr, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        return posix_spawn(&pid, path, &actions, &attr, argv, environ)
    }
}
