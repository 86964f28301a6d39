@testable import RegwatchAggregator
import Testing

@Suite("Fleet gauges pace")
struct FleetGaugesPaceTests {
    @Test("a cheap round waits the configured refresh; a costly one waits 20 times its cost")
    func pausedByItsOwnCost() {
        #expect(FleetGaugesService.pause(after: .milliseconds(30), refresh: .seconds(5)) == .seconds(5))
        #expect(FleetGaugesService.pause(after: .milliseconds(250), refresh: .seconds(5)) == .seconds(5))
        #expect(FleetGaugesService.pause(after: .milliseconds(1500), refresh: .seconds(5)) == .seconds(30))
        #expect(FleetGaugesService.pause(after: .zero, refresh: .seconds(1)) == .seconds(1))
    }
}
