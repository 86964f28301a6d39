import FoundationEssentials
import Glibc

/// Where the host's `/` is, for an agent that runs in a container with the host mounted under a prefix
/// (`--host-root /host`, the convention of node_exporter's `--path.rootfs`). Host paths in the config and
/// in discovered files stay as the host sees them; ``path(_:)`` gives the path to open and ``shown(_:)``
/// turns a path (or a message naming one) back into the host's view.
///
/// Reads go through ``contents(atPath:)``, which resolves symbolic links inside the prefix, as a chroot
/// would: an absolute link on the host (`/etc/docker/daemon.json -> /srv/docker.json`) points at the
/// host's file, never at the container's.
public struct HostRoot: Sendable, Equatable, CustomStringConvertible {
    /// The prefix without a trailing slash; empty for the agent's own `/`.
    public let prefix: String

    public init() { prefix = "" }

    /// `dir` must be absolute; `/` is the same as no prefix.
    public init?(_ dir: String) {
        guard dir.hasPrefix("/") else { return nil }
        var p = dir
        while p.hasSuffix("/") { p.removeLast() }
        prefix = p
    }

    public var isHost: Bool { prefix.isEmpty }
    public var description: String { prefix.isEmpty ? "/" : prefix }

    /// The path to open for a host path (absolute); `..` cannot climb above the prefix.
    public func path(_ hostPath: String) -> String {
        guard !prefix.isEmpty else { return hostPath }
        return prefix + "/" + Self.clean(hostPath).joined(separator: "/")
    }

    /// ``path(_:)`` with the symbolic links that exist now resolved inside the root: what to open or
    /// connect to for a host path (`/var/run` is a link to `/run` on most hosts, and must lead to the
    /// host's `/run`, not the container's).
    public func resolve(_ hostPath: String) -> String {
        let real = path(hostPath)
        return contained(real) ?? real
    }

    /// A path or message with the prefix taken out again: what the host would call it. Only where a path
    /// starts (the text's start, or after a space, quote, bracket, `=`, `:` or `,`), so `/srv/host/x` stays
    /// itself under the root `/host`.
    public func shown(_ text: String) -> String {
        guard !prefix.isEmpty else { return text }
        let marker = prefix + "/"
        var out = ""
        var rest = Substring(text)
        while let r = rest.firstRange(of: marker) {
            let before = rest[..<r.lowerBound]
            let atStart = before.isEmpty ? (out.last.map { " \"'([{=:,".contains($0) } ?? true) : " \"'([{=:,".contains(before.last!)
            out += before
            out += atStart ? "/" : marker
            rest = rest[r.upperBound...]
        }
        return out + rest
    }

    /// Reads a file given as a real path (``path(_:)`` of a host path); nil when absent or unreadable.
    public func contents(atPath real: String) -> [UInt8]? {
        guard let target = contained(real) else { return nil }
        let fd = open(target, O_RDONLY | O_CLOEXEC | O_NONBLOCK) // a FIFO must not block the read
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return out }
            out += chunk[0..<n]
            if out.count > 16 << 20 { return nil } // no runtime config is this big
        }
    }

    public func fileExists(atPath real: String) -> Bool {
        guard let target = contained(real) else { return false }
        var st = stat()
        return stat(target, &st) == 0
    }

    public func isDirectory(atPath real: String) -> Bool {
        guard let target = contained(real) else { return false }
        var st = stat()
        return stat(target, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Names in a directory, sorted; nil when it is absent.
    public func contentsOfDirectory(atPath real: String) -> [String]? {
        guard let target = contained(real), let dir = opendir(target) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The real path with every symbolic link below the prefix resolved inside it; nil on a loop.
    func contained(_ real: String) -> String? {
        guard !prefix.isEmpty, real == prefix || real.hasPrefix(prefix + "/") else { return real }
        var pending = Self.clean(String(real.dropFirst(prefix.count)))
        var resolved: [String] = []
        var links = 0
        while !pending.isEmpty {
            let part = pending.removeFirst()
            if part == ".." { _ = resolved.popLast(); continue }
            let candidate = prefix + "/" + (resolved + [part]).joined(separator: "/")
            var st = stat()
            guard lstat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else {
                resolved.append(part)
                continue
            }
            links += 1
            guard links <= 40 else { return nil }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(candidate, &buffer, buffer.count - 1)
            guard n > 0 else { resolved.append(part); continue }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") { resolved = [] }
            pending = target.split(separator: "/").map(String.init).filter { $0 != "." } + pending
        }
        return prefix + "/" + resolved.joined(separator: "/")
    }

    /// Path components with `.` and empty parts gone and `..` applied, never above the root.
    static func clean(_ path: String) -> [String] {
        var parts: [String] = []
        for p in path.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { _ = parts.popLast(); continue }
            parts.append(String(p))
        }
        return parts
    }
}
