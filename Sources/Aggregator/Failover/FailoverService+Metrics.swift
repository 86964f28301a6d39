import Foundation
import Metrics
import RegwatchShared

extension FailoverService {
    /// The failover gauges from the controller's state: generations per state, blocked mirror maps,
    /// the freeze. Every state gets a series (0 when none), so a rule can compare without `absent()`.
    static func publish(_ state: FailoverState) {
        Gauge(label: MetricNames.failoverGeneration).record(Int(clamping: state.generation))
        var counts = Dictionary(uniqueKeysWithValues: FailoverPlan.State.allCases.map { ($0, 0) })
        for plan in state.plans { counts[plan.state, default: 0] += 1 }
        for (s, n) in counts {
            Gauge(label: MetricNames.failoverPlans, dimensions: [("state", s.rawValue)]).record(n)
        }
        Gauge(label: MetricNames.failoverBlocked).record(state.blocks.count)
        Gauge(label: MetricNames.failoverFrozen).record(state.frozen == nil ? 0 : 1)
        Gauge(label: MetricNames.failoverFrozenSince).record(state.frozen?.since.timeIntervalSince1970 ?? 0)
    }
}
