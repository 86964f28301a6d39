import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

@Suite("Enrollment policy")
struct EnrollmentPolicyTests {
    let key = try! CurveKeyPair.generate().publicKey
    let other = try! CurveKeyPair.generate().publicKey

    func inputs(host: String = "node-1", token: TokenStore.Verdict = .valid(name: "t"), active: [CurvePublicKey: String] = [:],
                revoked: Set<CurvePublicKey> = [], rejected: Set<CurvePublicKey> = [], claimedKey: String? = nil) -> EnrollmentPolicy.Inputs {
        .init(request: JoinRequest(host: HostIdentity(id: host), publicKey: claimedKey ?? key.z85, token: "x", agentVersion: "t"),
              key: key, tables: .init(active: active, revoked: revoked), rejected: rejected, token: token)
    }

    let token = EnrollmentPolicy(mode: .token, hostPattern: nil)
    let manual = EnrollmentPolicy(mode: .manual, hostPattern: nil)

    @Test("token mode: a valid token enrolls at once; every bad token is refused with its own result")
    func tokens() {
        #expect(token.decide(inputs()) == .accept(result: "accepted", via: "token t"))
        for (verdict, result) in [(TokenStore.Verdict.missing, "token_missing"), (.invalid, "token_invalid"), (.expired(name: "t"), "token_expired"),
                                  (.revoked(name: "t"), "token_revoked"), (.exhausted(name: "t"), "token_exhausted")] {
            guard case .refuse(let r, let reason) = token.decide(inputs(token: verdict)) else { Issue.record("\(verdict) not refused"); continue }
            #expect(r == result)
            #expect(reason == verdict.reason)
        }
    }

    @Test("manual mode: every join waits, whatever the token")
    func manualWaits() {
        for verdict in [TokenStore.Verdict.valid(name: "t"), .invalid, .missing] {
            guard case .pending(let reason) = manual.decide(inputs(token: verdict)) else { Issue.record("\(verdict)"); continue }
            #expect(reason.contains("manual"))
        }
    }

    @Test("never a silent identity change: a host enrolled with another key waits for --replace, in both modes")
    func collision() {
        for policy in [token, manual] {
            guard case .pending(let reason) = policy.decide(inputs(active: [other: "node-1"])) else { Issue.record("\(policy.mode)"); continue }
            #expect(reason.contains("--replace"))
        }
    }

    @Test("an enrolled key is confirmed without a token; one enrolled for another host is refused")
    func knownKeys() {
        #expect(token.decide(inputs(token: .missing, active: [key: "node-1"])) == .accept(result: "already_enrolled", via: ""))
        #expect(manual.decide(inputs(token: .missing, active: [key: "node-1"])) == .accept(result: "already_enrolled", via: ""))
        guard case .refuse("malformed", _) = token.decide(inputs(active: [key: "node-2"])) else { Issue.record("accepted a key for another host"); return }
    }

    @Test("revoked and rejected keys are refused even with a valid token")
    func refusedKeys() {
        guard case .refuse("key_revoked", _) = token.decide(inputs(revoked: [key])) else { Issue.record("revoked"); return }
        guard case .refuse("key_rejected", _) = token.decide(inputs(rejected: [key])) else { Issue.record("rejected"); return }
    }

    @Test("a join naming another key than the connection's, or an invalid host id, is malformed")
    func malformed() {
        guard case .refuse("malformed", _) = token.decide(inputs(claimedKey: other.z85)) else { Issue.record("other key"); return }
        guard case .refuse("malformed", _) = token.decide(inputs(host: "../etc")) else { Issue.record("bad host"); return }
    }

    @Test("hostPattern: a whole match is accepted, anything else waits")
    func pattern() {
        let p = EnrollmentPolicy(mode: .token, hostPattern: "node-[0-9]+")
        #expect(p.decide(inputs(host: "node-12")) == .accept(result: "accepted", via: "token t"))
        for host in ["evil-node-12", "node-12x"] {
            guard case .pending(let reason) = p.decide(inputs(host: host)) else { Issue.record("\(host) not pending"); continue }
            #expect(reason.contains("hostPattern"))
        }
    }

    @Test("the rate limiter passes a burst of `rate`, then one per 1/rate seconds")
    func rateLimiter() {
        var limiter = JoinRateLimiter(perSecond: 50)
        let t0 = ContinuousClock.now
        var passed = 0
        for _ in 0..<60 where limiter.allow(now: t0) { passed += 1 }
        #expect(passed == 50)
        let early = limiter.allow(now: t0 + .milliseconds(10))
        let later = limiter.allow(now: t0 + .milliseconds(30))
        #expect(!early && later)
        passed = 0
        for _ in 0..<200 where limiter.allow(now: t0 + .seconds(10)) { passed += 1 }
        #expect(passed == 50)
    }
}

@Suite("Token store")
struct TokenStoreTests {
    let dir = temporaryDirectory("tokens")
    var store: TokenStore { TokenStore(keysDir: dir) }

    @Test("a token is printed once, stored only as a hash, and has at least 128 random bits")
    func hashedOnly() throws {
        let a = try store.create(name: "a", ttl: .seconds(3600), maxUses: nil)
        let b = try store.create(name: "b", ttl: nil, maxUses: nil)
        #expect(a.hasPrefix(TokenStore.prefix) && a.count == TokenStore.prefix.count + 40)
        #expect(a != b)
        let text = try String(contentsOfFile: store.path, encoding: .utf8)
        #expect(!text.contains(a) && !text.contains(String(a.dropFirst(4))))
        #expect(text.contains(TokenStore.hash(a)))
        var st = stat()
        #expect(stat(store.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try store.check([a]) == [.valid(name: "a")])
        #expect(try store.check([b]) == [.valid(name: "b")])
        #expect(try store.check([a + "0"]) == [.invalid])
        #expect(try store.check([nil]) == [.missing])
        #expect(try store.check([""]) == [.missing])
        #expect(throws: KeysFileError.tokenExists("a")) { try store.create(name: "a", ttl: nil, maxUses: nil) }
        #expect(throws: KeysFileError.invalidTokenName("no spaces")) { try store.create(name: "no spaces", ttl: nil, maxUses: nil) }
    }

    @Test("expiry, revocation and max uses; a refused check writes nothing")
    func lifecycle() throws {
        // Whole seconds: the file keeps milliseconds, and a rounded expiry would move the boundary checked below.
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let short = try store.create(name: "short", ttl: .seconds(60), maxUses: nil, now: now)
        #expect(try store.check([short], now: now.addingTimeInterval(59)) == [.valid(name: "short")])
        #expect(try store.check([short], now: now.addingTimeInterval(60)) == [.expired(name: "short")])

        let twice = try store.create(name: "twice", ttl: nil, maxUses: 2, now: now)
        #expect(try store.use([twice]) == [.valid(name: "twice")])
        #expect(try store.use([twice]) == [.valid(name: "twice")])
        let before = try String(contentsOfFile: store.path, encoding: .utf8)
        #expect(try store.use([twice]) == [.exhausted(name: "twice")])
        #expect(try String(contentsOfFile: store.path, encoding: .utf8) == before)
        #expect(try store.list().first { $0.name == "twice" }?.uses == 2)
        #expect(try store.list().first { $0.name == "twice" }?.state == "exhausted")

        // One batch racing for a token's last use: the first join has it, the second finds it used up.
        let once = try store.create(name: "once", ttl: nil, maxUses: 1, now: now)
        #expect(try store.use([once, nil, once], now: now) == [.valid(name: "once"), .missing, .exhausted(name: "once")])
        #expect(try store.list().first { $0.name == "once" }?.uses == 1)

        try store.revoke(name: "short")
        #expect(try store.check([short], now: now) == [.revoked(name: "short")])
        #expect(throws: KeysFileError.noSuchToken("short")) { try store.revoke(name: "short") }
        // A name can be reused once revoked; the old token stays revoked.
        let again = try store.create(name: "short", ttl: nil, maxUses: nil)
        #expect(try store.check([again]) == [.valid(name: "short")])
        #expect(try store.check([short]) == [.revoked(name: "short")])
    }

    @Test("racing uses of a token's last use: exactly one wins")
    func lastUseRace() async throws {
        let once = try store.create(name: "once", ttl: nil, maxUses: 1)
        let store = store
        let wins = await withTaskGroup(of: Bool.self) { group -> Int in
            for _ in 0..<16 { group.addTask { (try? store.use([once])) == [.valid(name: "once")] } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
    }
}

@Suite("Pending joins")
struct PendingJoinStoreTests {
    let dir = temporaryDirectory("pending")

    func entry(_ host: String, _ key: CurvePublicKey) -> PendingJoinStore.Entry {
        .init(host: host, key: key.z85, labels: [:], agentVersion: "t", reason: "manual", token: "none", firstSeen: Date(), lastSeen: Date(), attempts: 1)
    }

    @Test("bounded; a repeat updates, a rejected key stays rejected; take needs one match")
    func lifecycle() throws {
        let store = PendingJoinStore(keysDir: dir)
        let keys = try (0..<4).map { _ in try CurveKeyPair.generate().publicKey }
        #expect(try store.add(entry("a", keys[0]), limit: 2) == .added)
        #expect(try store.add(entry("a", keys[0]), limit: 2) == .repeated)
        #expect(try store.add(entry("a", keys[1]), limit: 2) == .added)
        #expect(try store.add(entry("b", keys[2]), limit: 2) == .full)
        #expect(try store.pending().count == 2)
        #expect(try store.pending().first?.attempts == 2)
        #expect(throws: KeysFileError.severalPendingJoins(host: "a", count: 2)) { try store.take(host: "a", key: nil) }
        #expect(try store.take(host: "a", key: keys[1]).key == keys[1].z85)
        #expect(throws: KeysFileError.noPendingJoin("b")) { try store.take(host: "b", key: nil) }
        #expect(try store.reject(host: "a").map(\.key) == [keys[0].z85])
        #expect(try store.rejectedKeys() == [keys[0]])
        #expect(try store.add(entry("a", keys[0]), limit: 2) == .rejected)
        #expect(try store.pending().isEmpty)
    }
}
