import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Writes files so a crash leaves either the old content or the new one, never half of either:
/// temp file in the same directory, fsync, rename, fsync the directory.
public enum AtomicFile {
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Writes `data` to `path` atomically with the given permission bits.
    /// With `exclusive`, refuses to replace an existing file.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, exclusive: Bool = false) throws(WriteError) {
        try write(to: path, mode: mode, exclusive: exclusive) { (emit: ([UInt8]) throws(WriteError) -> Void) throws(WriteError) in try emit(bytes) }
    }

    /// Like ``write(_:to:mode:exclusive:)`` for content produced in pieces: `produce` hands each piece to
    /// `emit`, so a large file never has to be held in memory whole.
    public static func write(
        to path: String, mode: mode_t = 0o644, exclusive: Bool = false,
        _ produce: (_ emit: ([UInt8]) throws(WriteError) -> Void) throws(WriteError) -> Void
    ) throws(WriteError) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        if exclusive && FileManager.default.fileExists(atPath: path) {
            throw WriteError(path: path, reason: "already exists; not overwriting")
        }
        Failpoint.hit("atomic.before-temp")
        let tmp = "\(dir)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WriteError(path: path, reason: "cannot create in \(dir): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do throws(WriteError) {
            try produce { (bytes: [UInt8]) throws(WriteError) in
                let written = bytes.withUnsafeBytes { buf -> Int in
                    var off = 0
                    while off < buf.count {
                        let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                        if n < 0 { if errno == EINTR { continue }; return -1 }
                        off += n
                    }
                    return off
                }
                guard written == bytes.count else { throw WriteError(path: path, reason: "write failed: \(String(cString: strerror(errno)))") }
            }
        } catch {
            close(fd)
            throw error
        }
        Failpoint.hit("atomic.after-temp-write")
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw WriteError(path: path, reason: "write failed: \(reason)")
        }
        close(fd)
        Failpoint.hit("atomic.after-fsync")
        if exclusive {
            // link(2) fails if the target appeared meanwhile: no silent overwrite of a secret.
            guard link(tmp, path) == 0 else { throw WriteError(path: path, reason: "already exists; not overwriting") }
            unlink(tmp)
        } else {
            guard rename(tmp, path) == 0 else { throw WriteError(path: path, reason: "rename failed: \(String(cString: strerror(errno)))") }
        }
        ok = true
        Failpoint.hit("atomic.after-rename")
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
        Failpoint.hit("atomic.after-dir-fsync")
    }

    /// Removes temp files a killed writer of `path` left behind (`.NAME.tmp-PID-N` next to it).
    public static func removeLeftovers(of path: String) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent).tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
            unlink("\(dir)/\(name)")
        }
    }
}
