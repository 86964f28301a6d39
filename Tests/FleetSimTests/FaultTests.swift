import RegwatchFleetSim
import Testing

@Suite struct FaultTests {
    @Test func parsesEveryKindAndScope() throws {
        #expect(try Fault(parsing: "mirror-down") == Fault(kind: .mirrorDown, scope: .all))
        #expect(try Fault(parsing: "mirror-down:share=0.3") == Fault(kind: .mirrorDown, scope: .share(0.3)))
        #expect(try Fault(parsing: "mirror-down:zone=zone-2") == Fault(kind: .mirrorDown, scope: .zone("zone-2")))
        #expect(try Fault(parsing: "quota:egress=egress-7") == Fault(kind: .quota, scope: .egress("egress-7")))
        #expect(try Fault(parsing: "silent:share=0.05") == Fault(kind: .silent, scope: .share(0.05)))
    }

    @Test(arguments: [
        ("mirror-up", "the kind must be one of"),
        ("quota", "quota needs egress=NAME"),
        ("quota:zone=z1", "quota needs egress=NAME"),
        ("mirror-down:share=2", "share must be a number in (0, 1]"),
        ("mirror-down:share=", "expected KEY=VALUE"),
        ("silent:host=a", "the scope must be share=, zone= or egress="),
    ])
    func refusesWithOneLineNamingTheOption(text: String, message: String) {
        #expect {
            try Fault(parsing: text)
        } throws: { error in
            let d = String(describing: error)
            return d.hasPrefix("--fault: \"\(text)\"") && d.contains(message) && !d.contains("\n")
        }
    }

    @Test func shareIsStableAndClose() {
        let fault = Fault(kind: .silent, scope: .share(0.1))
        let hit = (0..<10_000).filter { fault.applies(index: $0, labels: [:]) }
        #expect(hit.count > 900 && hit.count < 1100)
        #expect(hit == (0..<10_000).filter { fault.applies(index: $0, labels: [:]) })
    }

    @Test func zoneAndEgressMatchTheLabel() {
        #expect(Fault(kind: .mirrorDown, scope: .zone("zone-2")).applies(index: 1, labels: ["zone": "zone-2"]))
        #expect(!Fault(kind: .mirrorDown, scope: .zone("zone-2")).applies(index: 1, labels: ["zone": "zone-1"]))
        #expect(Fault(kind: .quota, scope: .egress("egress-3")).applies(index: 9, labels: ["egress": "egress-3"]))
    }
}
