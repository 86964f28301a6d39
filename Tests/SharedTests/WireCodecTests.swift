import Foundation
import Logging
@testable import RegwatchShared
import Synchronization
import Testing

@Suite("Wire codec and dispatcher")
struct WireCodecTests {
    let codec = WireCodec()

    final class Calls: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
    }

    func dispatcherCounting() -> (MessageDispatcher, Calls) {
        let calls = Calls()
        let handlers = Dictionary(uniqueKeysWithValues: MessageType.allCases.map { t in
            (t, { (_: WireMessage, _: String?) in _ = calls.count.add(1, ordering: .relaxed) } as MessageDispatcher.Handler)
        })
        return (MessageDispatcher(handlers: handlers, logger: Harness.logger), calls)
    }

    @Test("a truncated frame is rejected with a one-line error and counted")
    func truncated() throws {
        let full = try codec.encode(WireSamples.report)
        let cut = Array(full.prefix(full.count / 2))
        #expect(throws: WireError.self) { try codec.decode(cut) }
        do { _ = try codec.decode(cut) } catch {
            #expect(error.code == "wire.not_json")
            #expect(!error.description.contains("\n"))
        }
        let (d, calls) = dispatcherCounting()
        #expect(d.dispatch(cut, authenticatedPeer: "node-a1") == .rejected("wire.not_json"))
        #expect(d.dispatch(Array("GET / HTTP/1.1\r\n\r\n".utf8), authenticatedPeer: "node-a1") == .rejected("wire.not_json"))
        #expect(d.dispatch([], authenticatedPeer: "node-a1") == .rejected("wire.empty"))
        #expect(d.dispatch([0xFF, 0xFE, 0x00], authenticatedPeer: nil) == .rejected("wire.not_json"))
        #expect(d.statistics.malformed == 4)
        #expect(calls.value == 0)
    }

    @Test("JSON that is not an envelope names the missing field")
    func missingHeader() {
        do {
            _ = try codec.decode(Array(#"{"v":1,"host":"a","seq":1,"sentAt":"2025-11-24T16:00:00Z"}"#.utf8))
            Issue.record("decoded")
        } catch {
            #expect(error == .missingHeader("missing field type"))
        }
        #expect(throws: WireError.self) { try codec.decode(Array("[1,2,3]".utf8)) }
    }

    @Test("a body that does not match its type is invalid_body, naming the path")
    func invalidBody() {
        let json = #"{"v":1,"type":"pull_events","host":"a","seq":1,"sentAt":"2025-11-24T16:00:00Z","body":{"events":[{"seq":"x"}]}}"#
        do {
            _ = try codec.decode(Array(json.utf8))
            Issue.record("decoded")
        } catch {
            guard case .invalidBody(let type, let detail) = error else { Issue.record("\(error)"); return }
            #expect(type == "pull_events")
            #expect(detail.contains("body.events[0].seq"))
        }
    }

    @Test("versions outside the supported range are refused")
    func versions() {
        for v in [0, WireProtocol.version + 1, -3] {
            let json = #"{"v":\#(v),"type":"events_ack","host":"a","seq":1,"sentAt":"2025-11-24T16:00:00Z","body":{"seqs":[]}}"#
            #expect(throws: WireError.unsupportedVersion(v)) { try codec.decode(Array(json.utf8)) }
        }
    }

    @Test("a role only handles the types it registered: an agent never handles a report")
    func roleAllowlist() throws {
        let calls = Mutex(0)
        let agentSide = MessageDispatcher(handlers: [.eventsAck: { _, _ in calls.withLock { $0 += 1 } }], logger: Harness.logger)
        #expect(agentSide.dispatch(try codec.encode(WireSamples.report), authenticatedPeer: nil) == .rejected("wire.type_not_accepted"))
        #expect(agentSide.dispatch(try codec.encode(WireSamples.eventsAck), authenticatedPeer: nil) == .handled(.eventsAck))
        #expect(agentSide.statistics.notAllowed == 1)
        #expect(calls.withLock { $0 } == 1)
    }

    @Test("RFC 3339 times with and without fractions decode to the same instant")
    func times() throws {
        #expect(RFC3339.parse("2025-11-24T16:00:00Z") == WireSamples.t0)
        #expect(RFC3339.parse("2025-11-24T16:00:00.000Z") == WireSamples.t0)
        #expect(RFC3339.format(WireSamples.t1) == "2025-11-24T16:00:01.250Z")
        #expect(RFC3339.parse("yesterday") == nil)
    }

    /// Found by fuzzing (FuzzWireDecode): `.005` was written back as `.004`, then `.003`, one millisecond per
    /// decode and re-encode, because the formatter truncated a Double just below the millisecond.
    @Test("a time survives decode and re-encode to the millisecond, before and after 2001 too")
    func timesRoundTrip() throws {
        for text in ["2025-11-24T16:00:00.005Z", "2025-11-24T16:00:00.999Z", "2025-11-24T16:00:59.001Z", "1999-12-31T23:59:59.995Z",
                     "2000-12-31T23:59:59.001Z", "1970-01-01T00:00:00.000Z", "2001-01-01T00:00:00.000Z"] {
            let date = try #require(RFC3339.parse(text))
            #expect(RFC3339.format(date) == text)
            #expect(RFC3339.format(try #require(RFC3339.parse(RFC3339.format(date)))) == text)
        }
        // Sub-millisecond times round to the nearest millisecond instead of truncating.
        #expect(RFC3339.format(WireSamples.t0.addingTimeInterval(0.0119)) == "2025-11-24T16:00:00.012Z")
        #expect(RFC3339.format(WireSamples.t0.addingTimeInterval(-0.0004)) == "2025-11-24T16:00:00.000Z")
    }

    @Test("error classes: the contract vocabulary, and unknown values decode as unknown")
    func errorClasses() throws {
        let contract = ["ok", "rate_limited", "auth_failed", "access_denied", "dns_nxdomain", "dns_failure", "tcp_refused", "tcp_timeout",
                        "network_unreachable", "tls_handshake", "tls_untrusted", "tls_expired", "tls_hostname", "proxy_failure",
                        "not_registry", "not_found", "server_error", "timeout", "disk_full", "config_invalid", "unknown"]
        #expect(ErrorClass.allCases.map(\.rawValue) == contract)
        #expect(try JSONDecoder().decode([ErrorClass].self, from: Data(#"["tls_expired","warp_core_breach"]"#.utf8)) == [.tlsExpired, .unknown])
    }
}

@Suite("Command signing")
struct CommandSigningTests {
    let key = WireSamples.signingKey

    @Test func signAndVerify() throws {
        let cmd = try CommandSigner(key: key).sign(WireSamples.directive)
        #expect(try CommandVerifier(key: key.publicKey).verify(cmd) == WireSamples.directive)
    }

    @Test("a tampered payload, a foreign key or garbage is rejected")
    func rejections() throws {
        var cmd = try CommandSigner(key: key).sign(WireSamples.directive)
        var tampered = WireSamples.directive
        tampered.mirrors = ["docker.io": ["https://evil:5000"]]
        let forged = try CommandSigner(key: .init()).sign(tampered)
        #expect(throws: CommandVerifier.Failure.badSignature) { try CommandVerifier(key: key.publicKey).verify(forged) }
        cmd.payload = forged.payload
        #expect(throws: CommandVerifier.Failure.badSignature) { try CommandVerifier(key: key.publicKey).verify(cmd) }
        #expect(throws: CommandVerifier.Failure.badEncoding) {
            try CommandVerifier(key: key.publicKey).verify(SignedFailoverCommand(payload: "%%%", signature: "!!"))
        }
    }

    @Test("a directive with fields this build does not know still verifies: the signature covers the bytes sent")
    func newerDirectiveVerifies() throws {
        let json = #"{"expiresAt":"2025-11-24T16:10:00Z","generation":9,"issuedAt":"2025-11-24T16:00:00Z","mirrors":{"docker.io":["https://m:5000"]},"target":"node-a1","stage":"canary"}"#
        let payload = Data(json.utf8)
        let cmd = SignedFailoverCommand(payload: payload.base64EncodedString(), signature: try key.signature(for: payload).base64EncodedString())
        let d = try CommandVerifier(key: key.publicKey).verify(cmd)
        #expect(d.generation == 9)
        #expect(d.reason == "")
    }
}
