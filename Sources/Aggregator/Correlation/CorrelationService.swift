import Foundation
import Logging
import Metrics
import RegwatchShared
import ServiceLifecycle
import Synchronization

/// Runs the ``CorrelationEngine`` every window against the store's latest per host × endpoint state,
/// records the transitions (outage rows), keeps `regwatch_outage_active{kind}` and `regwatch_outage` current and hands opened
/// and closed outages to the ``AlertDispatcher``. The engine is restored from the store on start, so a
/// restarted aggregator neither reopens nor forgets an outage.
///
/// Only the leader evaluates (``Leadership``); a follower waits, and when it becomes leader it restores
/// the engine from the store, where the previous leader left it.
public final class CorrelationService: Service, Sendable {
    let store: any FleetStoring
    let leadership: Leadership
    let settings: CorrelationSettings
    let alerts: AlertDispatcher?
    let logger: Logger
    /// How often open outages are re-sent to Alertmanager, which resolves an alert it has not heard
    /// about for its `resolve_timeout` (5 min by default), as Prometheus re-sends firing alerts.
    let alertReminder: TimeInterval
    /// The `regwatch_outage` series published last window, so an ended outage's series can be removed.
    private let published = Mutex<Set<[String]>>([])

    public init(store: any FleetStoring, settings: CorrelationSettings, alerts: AlertDispatcher?, logger: Logger, alertReminder: TimeInterval = 60,
                leadership: Leadership = .sole) {
        self.store = store
        self.leadership = leadership
        self.settings = settings
        self.alerts = alerts
        self.logger = logger
        self.alertReminder = alertReminder
    }

    /// Stops at once on graceful shutdown: the wait between rounds (up to a whole interval) is cancelled.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        var engine = CorrelationEngine(settings: settings)
        /// The term the engine was restored for; nil while following.
        var ledTerm: UInt64?
        var lastReminder = Date()
        // Every window, and in between when a pending candidate is due to open (so an outage opens as
        // soon as it has held, not at the next window after that).
        var nextWindow = Date().addingTimeInterval(settings.windowSeconds)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Never sooner than a tenth of a window after the last evaluation (a failing database would
            // otherwise leave a due decision in the past and spin).
            let earliest = Date().addingTimeInterval(settings.windowSeconds / 10)
            let wake = min(nextWindow, engine.nextDecision.map { max($0, earliest) } ?? nextWindow)
            let wait = wake.timeIntervalSinceNow
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int((wait * 1000).rounded(.up)))) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            let now = Date()
            if now >= nextWindow {
                nextWindow = nextWindow.addingTimeInterval(settings.windowSeconds)
                if nextWindow < now { nextWindow = now.addingTimeInterval(settings.windowSeconds) }
            }
            guard let term = leadership.current.leading else {
                ledTerm = nil
                continue
            }
            if ledTerm != term {
                // A new term here: the engine continues from what the store holds, whoever wrote it.
                guard let active = await StoreThreads.run(.services, { [store] in try? store.activeOutageStates() }) else { continue }
                engine = CorrelationEngine(settings: settings, active: active)
                ledTerm = term
                if !engine.active.isEmpty { logger.info("restored active outages", metadata: ["count": "\(engine.active.count)", "epoch": "\(term)"]) }
                publish(engine)
            }
            // On the store's threads: the window waits on the database (``StoreThreads`` says why).
            engine = await StoreThreads.run { [engine] in
                var next = engine
                self.evaluate(&next, now: now)
                return next
            }
            if now.timeIntervalSince(lastReminder) >= alertReminder, let alerts, !engine.active.isEmpty {
                lastReminder = now
                let rows = await StoreThreads.run { [store] in (try? store.outages(activeOnly: true)) ?? [] }
                for row in rows { alerts.enqueue(.init(event: .opened, outage: row), reminder: true) }
            }
        }
    }

    /// One window: detect, record, publish, alert. A database error skips the window, keeping the engine's
    /// previous state so the next window decides again.
    func evaluate(_ engine: inout CorrelationEngine, now: Date) {
        let rows: [LatestStateRow]
        do {
            rows = try store.latestStates(now: now, staleAfter: settings.staleAfter)
        } catch {
            logger.error("correlation skipped a window: cannot read fleet state", metadata: ["error": "\(error)"])
            return
        }
        var next = engine
        let transitions = next.evaluate(rows: rows, now: now)
        let touched: [OutageRow]
        do {
            touched = try store.record(transitions, active: next.active)
        } catch {
            logger.error("correlation skipped a window: cannot record outages", metadata: ["error": "\(error)"])
            return
        }
        engine = next
        publish(engine)
        let byKey = Dictionary(touched.map { (Self.key(of: $0), $0) }, uniquingKeysWith: { a, b in a.id > b.id ? a : b })
        for t in transitions {
            guard let row = byKey[t.key] else { continue }
            switch t {
            case .opened:
                logger.warning("outage opened", metadata: Self.metadata(row))
                alerts?.enqueue(.init(event: .opened, outage: row))
            case .closed:
                logger.notice("outage closed", metadata: Self.metadata(row))
                alerts?.enqueue(.init(event: .closed, outage: row))
            case .updated:
                logger.info("outage updated", metadata: Self.metadata(row))
            }
        }
    }

    func publish(_ engine: CorrelationEngine) {
        var counts = Dictionary(uniqueKeysWithValues: OutageKind.allCases.map { ($0, 0) })
        for key in engine.active.keys { counts[key.kind, default: 0] += 1 }
        for (kind, n) in counts {
            Gauge(label: MetricNames.outageActive, dimensions: [("kind", kind.rawValue)]).record(n)
        }
        // One series per active outage; label values (kind, scope, class) as the key.
        var series: [[String]: Int] = [:]
        for outage in engine.active.values {
            let c = outage.candidate
            series[[c.kind.rawValue, c.key.scope, c.errorClass?.rawValue ?? "none"], default: 0] += c.affectedHosts
        }
        for (values, affected) in series {
            Gauge(label: MetricNames.outage, dimensions: Self.outageDimensions(values)).record(affected)
        }
        // An outage that ended (or changed class) loses its series instead of freezing at its last value.
        let gone = published.withLock { known in
            defer { known = Set(series.keys) }
            return known.subtracting(series.keys)
        }
        for values in gone { Gauge(label: MetricNames.outage, dimensions: Self.outageDimensions(values)).destroy() }
    }

    static func outageDimensions(_ values: [String]) -> [(String, String)] {
        Array(zip(["kind", "scope", "class"], values))
    }

    static func key(of row: OutageRow) -> OutageKey {
        OutageKey(kind: row.kind, endpoint: row.endpoint, registry: row.registry, zone: row.zone, host: row.host, egress: row.egress)
    }

    static func metadata(_ row: OutageRow) -> Logger.Metadata {
        var m: Logger.Metadata = ["outage.id": "\(row.id)", "kind": "\(row.kind.rawValue)", "affected": "\(row.affectedHosts)/\(row.totalHosts)"]
        if let e = row.endpoint { m["endpoint"] = "\(e)" }
        if let z = row.zone { m["zone"] = "\(z)" }
        if let h = row.host { m["host.id"] = "\(h)" }
        if let g = row.egress { m["egress"] = "\(g)" }
        if let c = row.errorClass { m["class"] = "\(c.rawValue)" }
        return m
    }
}
