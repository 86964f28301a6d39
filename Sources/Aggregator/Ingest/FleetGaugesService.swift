import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Keeps the fleet-level gauges current and the database bounded: every `refresh` it recomputes
/// `regwatch_probe_success{endpoint}` (share of reporting hosts that reach it), the lowest
/// `regwatch_ratelimit_remaining{egress}` and `regwatch_agents_connected`; every `maintenance` it rolls
/// raw probe samples up into per-minute rows, applies retention and checkpoints the WAL.
public final class FleetGaugesService: Service, Sendable {
    public struct Options: Sendable {
        public var refresh: Duration = .seconds(5)
        public var maintenance: Duration = .seconds(60)
        public var staleAfter = 3
        public var rawRetention: TimeInterval = 3600
        public var minuteRetention: TimeInterval = 7 * 86400
        public var eventRetention: TimeInterval = 7 * 86400
        public init() {}
    }

    let store: FleetStore
    let router: RouterServer
    let options: Options
    let logger: Logger
    /// Label sets recorded last round, so a vanished endpoint's or egress' series can be removed.
    private let known = Mutex<(endpoints: Set<String>, egress: Set<String>)>(([], []))

    public init(store: FleetStore, router: RouterServer, options: Options, logger: Logger) {
        self.store = store
        self.router = router
        self.options = options
        self.logger = logger
    }

    /// Stops at once on graceful shutdown: the wait between rounds (up to a whole interval) is cancelled.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        var sinceMaintenance = Duration.zero
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            refresh(now: Date())
            if sinceMaintenance >= options.maintenance {
                sinceMaintenance = .zero
                do {
                    try store.maintain(now: Date(), rawRetention: options.rawRetention, minuteRetention: options.minuteRetention, eventRetention: options.eventRetention)
                } catch {
                    logger.error("database maintenance failed", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: options.refresh)
            sinceMaintenance += options.refresh
        }
    }

    func refresh(now: Date) {
        Gauge(label: MetricNames.agentsConnected).record(router.statistics.connectedPeers)
        do { try store.markSilentHostsDisconnected(now: now) } catch {
            logger.warning("cannot update host connection states", metadata: ["error": "\(error)"])
        }
        do {
            let endpoints = try store.endpoints(now: now, staleAfter: options.staleAfter)
            var seen = Set<String>()
            for e in endpoints {
                seen.insert(e.endpoint)
                let share = e.hostsReporting == 0 ? 0 : Double(e.hostsReporting - e.hostsFailing) / Double(e.hostsReporting)
                Gauge(label: MetricNames.probeSuccess, dimensions: [("endpoint", e.endpoint)]).record(share)
            }
            var lowest: [String: Int] = [:]
            for row in try store.latestStates(now: now, staleAfter: options.staleAfter) where !row.stale {
                guard let remaining = row.probe.rateLimit?.remaining else { continue }
                let egress = row.labels["egress"] ?? "unknown"
                lowest[egress] = min(lowest[egress] ?? .max, remaining)
            }
            for (egress, remaining) in lowest {
                Gauge(label: MetricNames.rateLimitRemaining, dimensions: [("egress", egress)]).record(remaining)
            }
            let gone = known.withLock { k -> (Set<String>, Set<String>) in
                defer { k = (seen, Set(lowest.keys)) }
                return (k.endpoints.subtracting(seen), k.egress.subtracting(lowest.keys))
            }
            // A series nobody reports any more disappears instead of freezing at its last value.
            for endpoint in gone.0 { Gauge(label: MetricNames.probeSuccess, dimensions: [("endpoint", endpoint)]).destroy() }
            for egress in gone.1 { Gauge(label: MetricNames.rateLimitRemaining, dimensions: [("egress", egress)]).destroy() }
        } catch {
            logger.warning("cannot refresh fleet gauges", metadata: ["error": "\(error)"])
        }
    }
}
