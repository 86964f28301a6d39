import FoundationEssentials
import Glibc

/// Creates key directories owner-only (0700), and says clearly when a path is not a usable directory.
public enum KeyDirectory {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public static func ensure(_ dir: String) throws(Failure) {
        var info = stat()
        if stat(dir, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw Failure(path: dir, reason: "exists and is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw Failure(path: dir, reason: "cannot create directory")
        }
    }
}
