import Foundation
import RegwatchTestSupport
import Testing

@Suite("Test harness")
struct HarnessTests {
    @Test("a command that outlives its deadline is killed and reported, so the test fails instead of hanging")
    func spawnDeadline() throws {
        let started = ContinuousClock.now
        #expect(throws: HarnessError.self) {
            try RegistryHarness.spawnAndMeasure("/bin/sleep", ["30"], deadline: .seconds(1))
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        let (status, out, _) = try RegistryHarness.spawnAndMeasure("/bin/echo", ["done"], deadline: .seconds(10))
        #expect(status == 0 && out == "done\n")
    }
}
