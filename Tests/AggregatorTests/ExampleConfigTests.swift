import Foundation
@testable import RegwatchAggregator
import Testing

@Suite("Shipped example configuration")
struct ExampleConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("deploy/aggregator.example.yaml parses, every key documented there is known, and it states the defaults")
    func aggregatorExample() throws {
        let config = try AggregatorConfig.load(Self.root.appendingPathComponent("deploy/aggregator.example.yaml").path)
        let defaults = AggregatorConfig()
        #expect(config.correlation == defaults.correlation)
        #expect(config.failover == defaults.failover)
        #expect(config.enrollment == defaults.enrollment)
    }
}
