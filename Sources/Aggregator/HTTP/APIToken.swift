import Foundation
import RegwatchShared

/// The bearer token of mutating HTTP calls, read from the file `apiToken` names.
///
/// The file must not be readable by others, nor writable by its group: a token any local user can read
/// is no guard on the call that freezes fleet failover. Its group may read it, which is how a Kubernetes
/// Secret volume with `fsGroup` hands it to a non-root container (mode 0440 behind a symbolic link, which
/// is followed). Compared in constant time.
public struct APIToken: Sendable {
    let token: [UInt8]

    public init(_ token: String) {
        self.token = Array(token.utf8)
    }

    /// The token of the file at `path` (nil path: no token, mutating calls are refused).
    public static func load(_ path: String?, configFile: String) throws(ConfigError) -> APIToken? {
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: configFile, key: "apiToken", message: "cannot read \(path)")
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o027 != 0 {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw ConfigError(file: configFile, key: "apiToken", message: "\(path) is readable by others or writable by its group (mode \(mode)): chmod 600 it")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count >= 16, !text.contains(where: \.isWhitespace) else {
            throw ConfigError(file: configFile, key: "apiToken", message: "\(path) must hold one token of at least 16 characters")
        }
        return APIToken(text)
    }

    /// Whether an `Authorization` header value carries this token.
    public func authorizes(_ header: String?) -> Bool {
        guard let header, header.hasPrefix("Bearer ") else { return false }
        let given = Array(header.utf8.dropFirst(7))
        guard given.count == token.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, token) { diff |= a ^ b }
        return diff == 0
    }
}
