import Glibc
import RegwatchShared

/// Wakes a file tail when its file changes, so an idle tail sleeps in `poll` instead of waking every
/// second: an inotify watch on the file (writes, truncation, rename, deletion) and one on its directory
/// (the file created or renamed into place, as log rotation does).
///
/// Notifications are a shortcut, not the source of truth: ``FileTail`` still decides what changed, and
/// ``wait(timeout:)`` returns after the timeout anyway, so a filesystem that sends none (NFS, some FUSE
/// mounts) is still read at that pace.
///
/// One thread calls ``rearm()`` and ``wait(timeout:)``; ``stop()`` may come from any thread.
final class FileWatch: @unchecked Sendable {
    let path: String
    private let directory: String
    private let name: String
    private let inotify: Int32
    /// A pipe ``stop()`` writes to; the byte stays, so a stop before the first wait is not lost.
    private let stopRead: Int32
    private let stopWrite: Int32
    private var fileWatch: Int32 = -1
    private var directoryWatch: Int32 = -1

    /// Nil when inotify is unavailable (its per-user instance limit reached, a seccomp profile): the caller
    /// falls back to polling.
    init?(path: String) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        var stop: [Int32] = [-1, -1]
        guard pipe(&stop) == 0 else {
            close(fd)
            return nil
        }
        for end in stop { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        self.path = path
        let slash = path.lastIndex(of: "/")
        directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        inotify = fd
        stopRead = stop[0]
        stopWrite = stop[1]
    }

    deinit {
        close(inotify)
        close(stopRead)
        close(stopWrite)
    }

    /// Points the watches at what the path names now: after a rotation, the new file. Cheap enough to
    /// call before every read (adding a watch an inode already has returns the same descriptor).
    func rearm() {
        if directoryWatch < 0 {
            directoryWatch = inotify_add_watch(inotify, directory, UInt32(IN_CREATE | IN_MOVED_TO | IN_ONLYDIR))
        }
        let current = inotify_add_watch(inotify, path, UInt32(IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF))
        if fileWatch >= 0, current != fileWatch { inotify_rm_watch(inotify, fileWatch) }
        fileWatch = current
    }

    /// Blocks until the file changed (or appeared), `timeout` passed, or ``stop()`` was called; returns false
    /// only for the stop. Other files coming and going in the directory do not end the wait.
    func wait(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            var items = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
            let left = max(.zero, deadline - ContinuousClock.now)
            let rc = poll(&items, 2, Int32(clamping: left.milliseconds))
            if rc < 0, errno == EINTR { continue }
            if items[1].revents != 0 { return false }
            if rc <= 0 || items[0].revents == 0 || drainConcernsFile() { return true }
        }
    }

    /// Runs `loop` on a thread of its own, where it may block in ``wait(timeout:)``, and returns when the
    /// loop does. Cancelling the calling task stops the watch, which ends the loop's wait.
    func run(thread name: String, _ loop: @escaping @Sendable () -> Void) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                OSThread.detach(name: name, stackSize: 256 << 10) {
                    loop()
                    done.resume()
                }
            }
        } onCancel: {
            stop()
        }
    }

    /// Makes the current or next ``wait(timeout:)`` return false.
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
    }

    /// Reads the queued notifications; true when one is about the file (its own watch, or its name in the
    /// directory's).
    private func drainConcernsFile() -> Bool {
        var concerns = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            guard n > 0 else { return concerns }
            var at = 0
            while at + MemoryLayout<inotify_event>.size <= n {
                let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: inotify_event.self) }
                let nameStart = at + MemoryLayout<inotify_event>.size
                at = nameStart + Int(event.len)
                if event.wd == fileWatch { concerns = true }
                if event.wd == directoryWatch, event.len > 0, at <= n {
                    let bytes = buffer[nameStart..<at].prefix { $0 != 0 }
                    if bytes.elementsEqual(name.utf8) { concerns = true }
                }
            }
        }
    }
}
