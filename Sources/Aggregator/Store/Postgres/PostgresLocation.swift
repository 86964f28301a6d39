import Foundation

/// A PostgreSQL database named by `database: postgres://USER@HOST[:PORT]/DB[?sslmode=MODE]`.
///
/// The password never sits in the URL, which ends up in logs, `ps` and support bundles: it comes from
/// `databasePasswordFile`, else from the file libpq reads (`PGPASSFILE`, else `~/.pgpass`), so one
/// secret serves regwatch and the operator's `psql`. A URL with a password is refused, not ignored.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// libpq's `sslmode` values. `prefer` (libpq's default) tries TLS and falls back to plain TCP;
    /// `require` insists on TLS without checking the certificate; `verify-ca` checks it against the
    /// system's roots; `verify-full` checks the host name too.
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, prefer, require, verifyCA = "verify-ca", verifyFull = "verify-full"
    }

    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var sslmode: SSLMode

    /// The URL as the operator wrote it, minus nothing (there is no password in it).
    public var description: String {
        "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(sslmode.rawValue)"
    }

    public init(user: String, host: String, port: Int = 5432, database: String, sslmode: SSLMode = .prefer) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.sslmode = sslmode
    }

    /// Whether a `database:` value names PostgreSQL rather than an SQLite file.
    public static func isURL(_ value: String) -> Bool {
        value.hasPrefix("postgres://") || value.hasPrefix("postgresql://")
    }

    /// Parses a `postgres://` or `postgresql://` URL; the message of a failure names what is wrong.
    public static func parse(_ text: String) throws(PostgresLocationError) -> PostgresLocation {
        guard isURL(text), let url = URLComponents(string: text) else {
            throw .init("expected postgres://USER@HOST[:PORT]/DATABASE[?sslmode=MODE]")
        }
        if url.password != nil { throw .init("the URL holds a password; put it in databasePasswordFile (or PGPASSFILE) instead") }
        guard let user = url.user, !user.isEmpty else { throw .init("no user: write postgres://USER@HOST/DATABASE") }
        guard let host = url.host, !host.isEmpty else { throw .init("no host: write postgres://USER@HOST/DATABASE") }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { throw .init("port \(port) is out of range") }
        let database = String(url.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else { throw .init("no database name: write postgres://USER@HOST/DATABASE") }
        var sslmode = SSLMode.prefer
        for item in url.queryItems ?? [] {
            guard item.name == "sslmode" else { throw .init("unknown parameter \"\(item.name)\" (only sslmode is read)") }
            guard let mode = item.value.flatMap(SSLMode.init(rawValue:)) else {
                throw .init("sslmode \"\(item.value ?? "")\" is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            sslmode = mode
        }
        if url.fragment != nil { throw .init("unexpected # in the URL") }
        return PostgresLocation(user: user, host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host,
                                port: port, database: database, sslmode: sslmode)
    }

    /// The password: the first line of `passwordFile` when given, else the first matching line of the
    /// libpq password file (`PGPASSFILE`, else `~/.pgpass`), else nil (trust or peer authentication).
    /// A password file readable by group or others is refused, as libpq refuses `~/.pgpass`.
    public func password(passwordFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PostgresLocationError) -> String? {
        if let passwordFile {
            let text = try Self.readSecret(passwordFile, what: "databasePasswordFile")
            let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !line.isEmpty else { throw .init("\(passwordFile): databasePasswordFile is empty") }
            return line
        }
        let pgpass = environment["PGPASSFILE"] ?? environment["HOME"].map { "\($0)/.pgpass" }
        guard let pgpass, FileManager.default.fileExists(atPath: pgpass) else { return nil }
        return try Self.lookUp(in: Self.readSecret(pgpass, what: "PGPASSFILE"), file: pgpass, for: self)
    }

    static func readSecret(_ path: String, what: String) throws(PostgresLocationError) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .init("\(path): \(what) cannot be read: \(String(cString: strerror(errno)))") }
        guard info.st_mode & 0o077 == 0 else {
            throw .init("\(path): \(what) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .init("\(path): \(what) cannot be read as UTF-8 text")
        }
        return text
    }

    /// libpq's format: `hostname:port:database:username:password` per line, `*` matches anything, `\:`
    /// and `\\` escape, `#` starts a comment line; the first matching line wins.
    static func lookUp(in text: String, file: String, for location: PostgresLocation) throws(PostgresLocationError) -> String? {
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty || line.hasPrefix("#") { continue }
            var fields: [String] = [""]
            var escaped = false
            for c in line {
                if escaped { fields[fields.count - 1].append(c); escaped = false }
                else if c == "\\" { escaped = true }
                else if c == ":", fields.count < 5 { fields.append("") }
                else { fields[fields.count - 1].append(c) }
            }
            guard fields.count == 5 else { throw .init("\(file):\(number + 1): expected hostname:port:database:username:password") }
            let wanted = [location.host, "\(location.port)", location.database, location.user]
            if zip(fields, wanted).allSatisfy({ $0 == "*" || $0 == $1 }) {
                return fields[4]
            }
        }
        return nil
    }
}

/// What is wrong with a `database:` URL or its password file, in one line.
public struct PostgresLocationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
