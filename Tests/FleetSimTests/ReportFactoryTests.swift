import Foundation
import RegwatchFleetSim
import RegwatchShared
import Testing

@Suite struct ReportFactoryTests {
    let identity = SimIdentity(hostID: "sim-00001", labels: ["zone": "zone-1", "egress": "egress-1"], keys: try! CurveKeyPair.generate(), enrolledWith: nil)

    func report(_ conditions: ReportFactory.Conditions) throws -> Report {
        var rng = SimRandom(seed: 7)
        let report = ReportFactory().report(
            identity: identity, interval: .seconds(30), now: Date(), applied: 3, order: ReportFactory.initialOrder,
            conditions: conditions, pendingEvents: 2, rng: &rng)
        // What the aggregator reads: the same bytes through the wire codec.
        let frame = try WireCodec().encode(Envelope(host: identity.hostID, seq: 1, sentAt: Date(), body: report))
        guard case .report(let decoded) = try WireCodec().decode(frame) else {
            Issue.record("not decoded as a report")
            return report
        }
        #expect(decoded.body.probes.count == report.probes.count)
        return decoded.body
    }

    @Test func aHealthyHostProbesTenEndpointsAndDeclaresItsPools() throws {
        let r = try report(.init())
        #expect(r.probes.count == 10)
        #expect(r.probes.allSatisfy { $0.errorClass == .ok })
        #expect(r.appliedGeneration == 3)
        #expect(r.mirrorPools["docker.io"]?.map(\.url) == ["https://mirror-a.sim.test", "https://mirror-b.sim.test"])
        #expect(r.host.labels["zone"] == "zone-1")
        #expect(r.spool?.pending == 2)
    }

    @Test func mirrorDownFailsOnlyTheFirstDockerHubMirror() throws {
        let r = try report(.init(mirrorDown: true))
        let failing = r.probes.filter { $0.errorClass != .ok }
        #expect(failing.map(\.endpoint.url) == [ReportFactory.failingMirror])
        #expect(failing.first?.errorClass == .tcpRefused)
    }

    @Test func anExhaustedQuotaShowsOnTheUpstream() throws {
        let r = try report(.init(quotaExhausted: true))
        let hub = try #require(r.probes.first { $0.endpoint.url == "https://registry-1.docker.io" })
        #expect(hub.rateLimit?.remaining == 0)
        #expect(hub.errorClass == .rateLimited)
        #expect(r.probes.filter { $0.errorClass != .ok }.count == 1)
    }

    @Test func everyFigureIsPresentInTheSummaryEvenWhenNull() throws {
        var summary = SimSummary()
        summary.agents = 5
        let json = try #require(try JSONSerialization.jsonObject(with: JSONCoding.encoder().encode(summary)) as? [String: Any])
        for key in ["agents", "connected", "reportsSent", "reportsAcked", "detectSeconds", "fullStageAckedWithin10s", "allAckedSeconds",
                    "reconnectSpreadSeconds", "allReconnectedSeconds", "cpuSeconds", "peakRSSBytes"] {
            #expect(json.keys.contains(key), "missing \(key)")
        }
        #expect(json["detectSeconds"] is NSNull)
        #expect(json["agents"] as? Int == 5)
    }
}
