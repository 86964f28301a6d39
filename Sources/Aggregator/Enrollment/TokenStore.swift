import Crypto
import Foundation
import RegwatchShared

/// Bootstrap tokens in `keys.dir/tokens.json`: a token lets an agent that presents it in its `join` be
/// enrolled at once (`enrollment.mode: token`).
///
/// Only a SHA-256 of each token is stored, so the file (and a backup of it) gives no token away; a
/// presented token is hashed and compared with every stored hash in constant time. Tokens carry 160
/// random bits, so a hash is as good as a salted password hash here: there is nothing to guess.
public struct TokenStore: Sendable {
    public static let fileName = "tokens.json"
    /// Tokens start with this, so secret scanners and people recognise one.
    public static let prefix = "rwj_"

    public struct Record: Codable, Sendable, Equatable {
        public var name: String
        /// Hex SHA-256 of the token.
        public var hash: String
        public var createdAt: Date
        public var expiresAt: Date?
        public var maxUses: Int?
        public var uses: Int
        public var revokedAt: Date?
    }

    /// What `tokens list` shows: everything but the hash.
    public struct Summary: Codable, Sendable, Equatable {
        public var name: String
        public var createdAt: Date
        public var expiresAt: Date?
        public var maxUses: Int?
        public var uses: Int
        public var state: String
    }

    struct FileContent: Codable, Sendable {
        var version = 1
        var tokens: [Record] = []
    }

    /// A presented token's standing.
    public enum Verdict: Sendable, Equatable {
        case valid(name: String)
        case missing, invalid, expired(name: String), revoked(name: String), exhausted(name: String)

        /// The `result` label of `regwatch_enrollment_joins_total` when this refuses a join.
        public var result: String {
            switch self {
            case .valid: "accepted"
            case .missing: "token_missing"
            case .invalid: "token_invalid"
            case .expired: "token_expired"
            case .revoked: "token_revoked"
            case .exhausted: "token_exhausted"
            }
        }

        public var reason: String {
            switch self {
            case .valid(let n): "token \(n)"
            case .missing: "no bootstrap token (set aggregator.bootstrapToken on the agent)"
            case .invalid: "bootstrap token not recognised"
            case .expired(let n): "bootstrap token \(n) has expired"
            case .revoked(let n): "bootstrap token \(n) was revoked"
            case .exhausted(let n): "bootstrap token \(n) has been used its maximum number of times"
            }
        }
    }

    let file: any EnrollmentDocument<FileContent>
    public var path: String { file.path }

    public init(keysDir: String) {
        self.init(.files(keysDir: keysDir))
    }

    public init(_ backend: EnrollmentBackend) {
        file = backend.document("tokens", fileName: Self.fileName, empty: FileContent(), kind: "token")
    }

    /// Makes a token and stores its hash. Returns the token: the only time it is ever seen.
    public func create(name: String, ttl: Duration?, maxUses: Int?, now: Date = Date()) throws(KeysFileError) -> String {
        guard HostID.isValid(name) else { throw .invalidTokenName(name) }
        var bytes = [UInt8](repeating: 0, count: 20)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let token = Self.prefix + bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        try file.modify { (content: inout FileContent) throws(KeysFileError) in
            guard !content.tokens.contains(where: { $0.name == name && $0.revokedAt == nil }) else { throw .tokenExists(name) }
            content.tokens.append(Record(
                name: name, hash: Self.hash(token), createdAt: now, expiresAt: ttl.map { now.addingTimeInterval($0.seconds) },
                maxUses: maxUses, uses: 0, revokedAt: nil))
        }
        return token
    }

    public func list(now: Date = Date()) throws(KeysFileError) -> [Summary] {
        try file.read().tokens.map { r in
            Summary(name: r.name, createdAt: r.createdAt, expiresAt: r.expiresAt, maxUses: r.maxUses, uses: r.uses, state: Self.state(r, now: now))
        }
    }

    public func revoke(name: String, now: Date = Date()) throws(KeysFileError) {
        try file.modify { (content: inout FileContent) throws(KeysFileError) in
            guard let i = content.tokens.firstIndex(where: { $0.name == name && $0.revokedAt == nil }) else { throw .noSuchToken(name) }
            content.tokens[i].revokedAt = now
        }
    }

    /// The standing of each presented token, without using any (one read of the file).
    public func check(_ presented: [String?], now: Date = Date()) throws(KeysFileError) -> [Verdict] {
        let records = try file.read().tokens
        return presented.map { Self.verdict($0, in: records, now: now).verdict }
    }

    /// Uses each valid token once (counted towards `maxUses`), in order, re-checked under the lock so two
    /// joins racing for a token's last use cannot both have it; one write for the batch. The verdicts come
    /// in the same order; a count changes only for a valid one, and nothing is written when none is.
    public func use(_ presented: [String?], now: Date = Date()) throws(KeysFileError) -> [Verdict] {
        let checked = try check(presented, now: now)
        guard checked.contains(where: { if case .valid = $0 { true } else { false } }) else { return checked }
        return try file.modify { (content: inout FileContent) throws(KeysFileError) -> [Verdict] in
            presented.map { token in
                let (verdict, index) = Self.verdict(token, in: content.tokens, now: now)
                if case .valid = verdict, let index { content.tokens[index].uses += 1 }
                return verdict
            }
        }
    }

    static func verdict(_ token: String?, in tokens: [Record], now: Date) -> (verdict: Verdict, index: Int?) {
        guard let token, !token.isEmpty else { return (.missing, nil) }
        let presented = Array(hash(token).utf8)
        // Compare with every record, always in full, so timing says nothing about which (or whether) one matched.
        var match: Int?
        for (i, r) in tokens.enumerated() {
            let stored = Array(r.hash.utf8)
            var diff = UInt8(stored.count == presented.count ? 0 : 1)
            for j in 0..<min(stored.count, presented.count) { diff |= stored[j] ^ presented[j] }
            if diff == 0, match == nil || tokens[match!].revokedAt != nil { match = i }
        }
        guard let i = match else { return (.invalid, nil) }
        let r = tokens[i]
        if r.revokedAt != nil { return (.revoked(name: r.name), i) }
        if let e = r.expiresAt, e <= now { return (.expired(name: r.name), i) }
        if let m = r.maxUses, r.uses >= m { return (.exhausted(name: r.name), i) }
        return (.valid(name: r.name), i)
    }

    static func state(_ r: Record, now: Date) -> String {
        if r.revokedAt != nil { return "revoked" }
        if let e = r.expiresAt, e <= now { return "expired" }
        if let m = r.maxUses, r.uses >= m { return "exhausted" }
        return "valid"
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
