import Foundation
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// A small JSON file in `keys.dir` that several processes change: `serve` and the `keys`/`tokens`
/// commands run at the same time. Every change reads, modifies and writes under an exclusive `flock` on
/// a `.lock` file beside it, and the write is atomic (temp file, fsync, rename), so a reader never sees
/// half a file and no change is lost.
struct LockedJSONFile<Content: Codable & Sendable>: EnrollmentDocument {
    let path: String
    let empty: Content
    /// Says what the file is in an error (`not a regwatch enrollment file`).
    let kind: String

    func read() throws(KeysFileError) -> Content {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw .unreadable(path: path, reason: "cannot be read") }
            return empty
        }
        do {
            return try JSONCoding.decoder().decode(Content.self, from: data)
        } catch {
            throw .unreadable(path: path, reason: "not a regwatch \(kind) file: \(WireCodec.describe(error))")
        }
    }

    /// Applies `change` under the lock and writes the result, unless `change` throws (nothing written).
    func modify<T>(_ change: (inout Content) throws(KeysFileError) -> T) throws(KeysFileError) -> T {
        let dir = (path as NSString).deletingLastPathComponent
        do { try KeyDirectory.ensure(dir) } catch { throw .unreadable(path: dir, reason: error.reason) }
        let lockPath = "\(path).lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unreadable(path: lockPath, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        var content = try read()
        let result = try change(&content)
        do {
            let data = try JSONCoding.encoder(pretty: true).encode(content)
            try AtomicFile.write(Array(data), to: path, mode: 0o600)
        } catch {
            throw .unreadable(path: path, reason: "cannot write: \(error)")
        }
        return result
    }

    /// Identity of the file's current version (inode, size, mtime), to notice changes cheaply.
    func stamp() -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "\(st.st_ino)-\(st.st_size)-\(st.st_mtim.tv_sec)-\(st.st_mtim.tv_nsec)"
    }
}
