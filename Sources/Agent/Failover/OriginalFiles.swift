import FoundationEssentials
import Glibc
import RegwatchShared

/// Each runtime file as it was before regwatch first changed it, in `stateDir/originals/`, so an uninstall
/// puts the host back as it found it (`regwatch-agent restore`, the DaemonSet's cleanup). Kept once, before
/// the first write, and never replaced by later content: failover backups (`*.regwatch-backup`) only hold
/// the previous generation's.
///
/// Entries are named by the runtime and the path as the host names it, so a restore from a host install
/// and one from a container with the host under `/host` find the same files.
public struct OriginalFiles: Sendable {
    public let directory: String
    let root: HostRoot

    public struct Entry: Sendable, Equatable {
        public var runtime: RuntimeKind
        /// The path as the host names it.
        public var hostPath: String
        /// nil: the file did not exist before regwatch wrote it.
        public var content: [UInt8]?
    }

    public init(stateDir: String, root: HostRoot) {
        directory = stateDir + "/originals"
        self.root = root
    }

    /// `/etc/docker/daemon.json` -> `docker@%2Fetc%2Fdocker%2Fdaemon.json`.
    func name(_ runtime: RuntimeKind, _ hostPath: String) -> String {
        var out = runtime.rawValue + "@"
        for b in hostPath.utf8 {
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "%") || b < 0x21 || b > 0x7e {
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            } else {
                out.append(Character(Unicode.Scalar(b)))
            }
        }
        return out
    }

    /// Keeps `content` (nil: absent) for the file at `realPath` unless an original is already kept; durable
    /// before it returns, so a crash in the write that follows cannot lose it.
    public func keep(_ runtime: RuntimeKind, realPath: String, content: [UInt8]?) throws(RuntimeConfigError) {
        let base = "\(directory)/\(name(runtime, root.shown(realPath)))"
        guard access(base + ".orig", F_OK) != 0, access(base + ".absent", F_OK) != 0 else { return }
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw RuntimeConfigError(path: root.shown(directory), message: "cannot keep the original of \(root.shown(realPath)): \(error)")
        }
        do throws(AtomicFile.WriteError) {
            try AtomicFile.write(content ?? [], to: base + (content == nil ? ".absent" : ".orig"), mode: 0o600)
        } catch {
            throw RuntimeConfigError(path: root.shown(error.path), message: "cannot keep the original of \(root.shown(realPath)): \(error.reason)")
        }
    }

    public func list() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().compactMap { file -> Entry? in
            let absent = file.hasSuffix(".absent")
            guard absent || file.hasSuffix(".orig"), let at = file.firstIndex(of: "@"),
                  let runtime = RuntimeKind(rawValue: String(file[..<at])) else { return nil }
            let encoded = file[file.index(after: at)...].dropLast(absent ? 7 : 5)
            let hostPath = String(encoded).percentDecoded() ?? String(encoded)
            let content = absent ? nil : FileManager.default.contents(atPath: "\(directory)/\(file)").map { [UInt8]($0) }
            if !absent && content == nil { return nil }
            return Entry(runtime: runtime, hostPath: hostPath, content: content)
        }
    }

    public func forget(_ entry: Entry) {
        let base = "\(directory)/\(name(entry.runtime, entry.hostPath))"
        unlink(base + ".orig")
        unlink(base + ".absent")
    }
}
