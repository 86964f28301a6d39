import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Keeps the fleet-level gauges current and the database bounded: every `refresh` (longer on a large fleet,
/// see ``pause(after:refresh:)``) it recomputes
/// `regwatch_probe_success{endpoint}` (share of reporting hosts that reach it), the lowest
/// `regwatch_ratelimit_remaining{egress}`, the earliest certificate expiry per endpoint, hosts per status
/// and `regwatch_agents_connected`; every `maintenance` it rolls
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

    let store: any FleetStoring
    let router: RouterServer
    let options: Options
    let logger: Logger
    /// Label sets recorded last round, so a vanished endpoint's or egress' series can be removed.
    private let known = Mutex(Known())

    struct Known {
        var endpoints: Set<String> = []
        var egress: Set<String> = []
        var certificates: Set<String> = []
    }

    public init(store: any FleetStoring, router: RouterServer, options: Options, logger: Logger) {
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
        var headroomMinute = -1.0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = Date()
            let minute = (now.timeIntervalSince1970 / 60).rounded(.down)
            let maintain = sinceMaintenance >= options.maintenance
            if maintain { sinceMaintenance = .zero }
            // On the store's threads: a round waits on the database (``StoreThreads`` says why).
            let (took, recorded) = await StoreThreads.run { [headroomMinute] in
                let started = ContinuousClock.now
                let lowest = self.refresh(now: now)
                let took = ContinuousClock.now - started
                // Once a minute, the quota per egress for the dashboard's history.
                var recorded = false
                if let lowest, minute != headroomMinute {
                    recorded = true
                    do { try self.store.recordHeadroom(lowest, at: now) } catch {
                        self.logger.warning("cannot record rate-limit headroom", metadata: ["error": "\(error)"])
                    }
                }
                if maintain {
                    do {
                        try self.store.maintain(now: Date(), rawRetention: self.options.rawRetention, minuteRetention: self.options.minuteRetention,
                                                eventRetention: self.options.eventRetention)
                    } catch {
                        self.logger.error("database maintenance failed", metadata: ["error": "\(error)"])
                    }
                }
                return (took, recorded)
            }
            if recorded { headroomMinute = minute }
            let pause = Self.pause(after: took, refresh: options.refresh)
            try? await Task.sleep(for: pause)
            sinceMaintenance += pause
        }
    }

    /// The wait before the next round: `refresh`, or 20 times what the last round took when that is longer.
    /// A round reads every host's latest probes, so its cost grows with the fleet: at 10,000 hosts every
    /// 5 s it was most of the aggregator's CPU at rest (`make bench-fleet`). Paced by its own cost, it stays
    /// under about 5 % of a core, and the gauges of a large fleet are as fresh as a Prometheus scrape needs.
    static func pause(after took: Duration, refresh: Duration) -> Duration {
        max(refresh, took * 20)
    }

    /// Returns the lowest remaining quota per egress group (nil when the store could not be read).
    @discardableResult
    func refresh(now: Date) -> [String: Int]? {
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
            var expiry: [String: Double] = [:]
            for row in try store.latestStates(now: now, staleAfter: options.staleAfter) where !row.stale {
                if let notAfter = row.probe.tls?.expiresAt?.timeIntervalSince1970 {
                    expiry[row.probe.endpoint.url] = min(expiry[row.probe.endpoint.url] ?? .infinity, notAfter)
                }
                guard let remaining = row.probe.rateLimit?.remaining else { continue }
                let egress = row.labels["egress"] ?? "unknown"
                lowest[egress] = min(lowest[egress] ?? .max, remaining)
            }
            for (egress, remaining) in lowest {
                Gauge(label: MetricNames.rateLimitRemaining, dimensions: [("egress", egress)]).record(remaining)
            }
            for (endpoint, notAfter) in expiry {
                Gauge(label: MetricNames.certificateExpiry, dimensions: [("endpoint", endpoint)]).record(notAfter)
            }
            var statuses = Dictionary(uniqueKeysWithValues: HostRow.Status.allCases.map { ($0, 0) })
            for host in try store.hosts(now: now, staleAfter: options.staleAfter) { statuses[host.status, default: 0] += 1 }
            for (status, n) in statuses {
                Gauge(label: MetricNames.hosts, dimensions: [("status", status.rawValue)]).record(n)
            }
            let gone = known.withLock { k -> Known in
                defer { k = Known(endpoints: seen, egress: Set(lowest.keys), certificates: Set(expiry.keys)) }
                return Known(endpoints: k.endpoints.subtracting(seen), egress: k.egress.subtracting(lowest.keys),
                             certificates: k.certificates.subtracting(expiry.keys))
            }
            // A series nobody reports any more disappears instead of freezing at its last value.
            for endpoint in gone.endpoints { Gauge(label: MetricNames.probeSuccess, dimensions: [("endpoint", endpoint)]).destroy() }
            for egress in gone.egress { Gauge(label: MetricNames.rateLimitRemaining, dimensions: [("egress", egress)]).destroy() }
            for endpoint in gone.certificates { Gauge(label: MetricNames.certificateExpiry, dimensions: [("endpoint", endpoint)]).destroy() }
            return lowest
        } catch {
            logger.warning("cannot refresh fleet gauges", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
