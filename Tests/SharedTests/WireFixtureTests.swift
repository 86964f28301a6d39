import Crypto
import Foundation
@testable import RegwatchShared
import Testing

/// Golden fixtures: the exact bytes of every message type. A change to the wire format shows up as a
/// fixture diff in review; `REGWATCH_RECORD_FIXTURES=1 swift test --filter WireFixture` rewrites them.
@Suite("Wire golden fixtures")
struct WireFixtureTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/wire")
    let codec = WireCodec()

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    func check<B: WireBody>(_ envelope: Envelope<B>, file: String, extract: (WireMessage) -> Envelope<B>?) throws {
        let pretty = try JSONCoding.encoder(pretty: true).encode(envelope) + Data("\n".utf8)
        if ProcessInfo.processInfo.environment["REGWATCH_RECORD_FIXTURES"] != nil {
            try pretty.write(to: Self.directory.appendingPathComponent(file))
        }
        let golden = try Self.fixture(file)
        #expect(String(decoding: pretty, as: UTF8.self) == String(decoding: golden, as: UTF8.self), "encoding drifted from \(file)")
        let decoded = try #require(extract(try codec.decode(golden)), "\(file) decoded to another type")
        #expect(decoded == envelope)
        // Round trip through the compact wire form too.
        #expect(extract(try codec.decode(try codec.encode(envelope))) == envelope)
    }

    @Test func report() throws {
        try check(WireSamples.report, file: "report.json") { if case .report(let e) = $0 { e } else { nil } }
    }

    @Test func pullEvents() throws {
        try check(WireSamples.pullEvents, file: "pull_events.json") { if case .pullEvents(let e) = $0 { e } else { nil } }
    }

    @Test func eventsAck() throws {
        try check(WireSamples.eventsAck, file: "events_ack.json") { if case .eventsAck(let e) = $0 { e } else { nil } }
    }

    @Test func failoverCommand() throws {
        try check(WireSamples.failoverCommand, file: "failover_command.json") { if case .failoverCommand(let e) = $0 { e } else { nil } }
        // The fixture's signature verifies with the test key and carries the directive.
        guard case .failoverCommand(let env) = try codec.decode(try Self.fixture("failover_command.json")) else {
            Issue.record("failover_command.json is not a failover command"); return
        }
        let directive = try CommandVerifier(key: WireSamples.signingKey.publicKey).verify(env.body)
        #expect(directive == WireSamples.directive)
    }

    @Test func failoverAck() throws {
        try check(WireSamples.failoverAck, file: "failover_ack.json") { if case .failoverAck(let e) = $0 { e } else { nil } }
    }

    @Test func join() throws {
        try check(WireSamples.join, file: "join.json") { if case .join(let e) = $0 { e } else { nil } }
    }

    @Test func joinResult() throws {
        try check(WireSamples.joinResult, file: "join_result.json") { if case .joinResult(let e) = $0 { e } else { nil } }
    }

    @Test func rotate() throws {
        try check(WireSamples.rotate, file: "rotate.json") { if case .rotate(let e) = $0 { e } else { nil } }
    }

    @Test func rotateResult() throws {
        try check(WireSamples.rotateResult, file: "rotate_result.json") { if case .rotateResult(let e) = $0 { e } else { nil } }
    }

    @Test("every message type has a golden fixture")
    func everyTypeCovered() throws {
        for type in MessageType.allCases {
            let data = try Self.fixture("\(type.rawValue).json")
            #expect(try codec.decode(data).type == type)
        }
    }

    @Test("a newer sender's unknown fields (envelope, body, nested) and unknown error class decode")
    func unknownFieldsTolerated() throws {
        guard case .report(let env) = try codec.decode(try Self.fixture("compat/report.newer-fields.json")) else {
            Issue.record("not a report"); return
        }
        #expect(env.host == "node-a1")
        #expect(env.body.probes.count == 1)
        #expect(env.body.probes[0].errorClass == .unknown) // "quic_blocked" is not a class this build knows
        #expect(env.body.probes[0].phases.totalMs == 12.5)
    }

    @Test("an agent one version older (fewer fields) works with this aggregator")
    func olderAgentDecodes() throws {
        guard case .report(let env) = try codec.decode(try Self.fixture("compat/report.minimal-v1.json")) else {
            Issue.record("not a report"); return
        }
        #expect(env.body.runtimes.isEmpty)
        #expect(env.body.appliedGeneration == 0)
        #expect(env.body.mirrorPools.isEmpty)
        #expect(env.body.agentVersion == "unknown")
        guard case .pullEvents(let events) = try codec.decode(try Self.fixture("compat/pull_events.minimal-v1.json")) else {
            Issue.record("not pull events"); return
        }
        #expect(events.body.events.first?.detail == "")
        #expect(events.body.events.first?.source == "unknown")
    }
}
