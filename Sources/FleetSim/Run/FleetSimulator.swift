import CZeroMQ
import FoundationEssentials
import Glibc
import RegwatchShared
import Synchronization

/// Runs one scenario: starts the emulated fleet on ``SimSettings/threads`` shards, waits until every agent
/// is connected as its host id, plays the script and measures, then stops the fleet and returns the figures.
public final class FleetSimulator: Sendable {
    let settings: SimSettings
    /// Progress lines (stderr in the executable); the summary is the caller's to print.
    let progress: @Sendable (String) -> Void
    let control = SimControl()

    public init(settings: SimSettings, progress: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.progress = progress
    }

    public func run() async throws(SimError) -> SimSummary {
        let s = settings
        let verifier = try s.commandVerifier()
        let api = try s.api.map { base throws(SimError) in try AggregatorAPI(base: base) }
        try check(api: api)
        let store = SimIdentityFile(stateDir: s.stateDir)
        var identities = try store.load(count: s.agents, prefix: s.hostPrefix, zones: s.zones, egresses: s.egresses)
        // Every key, new ones included, is on disk before the first join: a run cut short keeps them.
        try store.save(identities)
        Self.raiseFileLimit()

        let before = aggregatorSample()
        let startMs = monotonicNow()
        // Four descriptors per agent (its TCP connection and the mailboxes of its socket, of the monitor
        // libzmq binds in it and of our monitor reader), five while an enrolled agent's joining socket waits
        // to be reaped. libzmq aborts the process when it runs out, so a larger fleet is split over workers.
        let perProcess = s.agentsPerProcess ?? max(100, (Self.fileLimit() - 256) / 5)
        let processes = (s.agents + perProcess - 1) / perProcess
        let share = (s.agents + processes - 1) / processes
        let local = try FleetSlice(
            settings: s, agents: (0..<min(share, s.agents)).map { ($0, identities[$0]) }, verifier: verifier, control: control, startMs: startMs)
        var workers: [WorkerLink] = []
        for first in stride(from: share, to: s.agents, by: share) {
            let count = min(share, s.agents - first)
            do { workers.append(try WorkerLink(arguments: Array(CommandLine.arguments.dropFirst()) + ["--worker", "\(first):\(count):\(startMs)"])) } catch {
                for w in workers { _ = await w.finish() }
                _ = await local.stop()
                throw error
            }
        }
        if processes > 1 { progress("\(s.agents) agents over \(processes) processes (\(share) each: \(Self.fileLimit()) open files per process)") }
        let fleet = Fleet(local: local, workers: workers, startMs: startMs, identities: identities, faults: s.faults)

        var summary = SimSummary()
        summary.scenario = s.scenario.rawValue
        summary.agents = s.agents
        var failure: SimError?
        do {
            summary.connectSeconds = try await waitForFleet(fleet)
            switch s.scenario {
            case .steady: try await steady(fleet, before: before, into: &summary)
            case .failover: try await failover(fleet, api: api!, into: &summary)
            case .reconnect: try await reconnect(fleet, into: &summary)
            case .crash: try await crash(fleet, into: &summary)
            }
        } catch {
            failure = error
        }
        if failure == nil, let broken = fleet.workerFailure() { failure = .aborted(broken) }
        let connectedAtEnd = fleet.totals().connected
        var totals = await local.stop()
        for w in workers { if let final = await w.finish() { totals.add(final) } }

        fill(&summary, totals)
        summary.connected = connectedAtEnd
        if let end = aggregatorSample() {
            summary.cpuSeconds = end.cpuSeconds
            summary.rssBytes = summary.rssBytes ?? end.rssBytes
            summary.peakRSSBytes = end.peakRSSBytes
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        summary.simCPUSeconds = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        // Who is enrolled now, from every process's final figures.
        let enrolled = Set(totals.enrolledAgents)
        for i in identities.indices {
            identities[i].enrolledWith = enrolled.contains(Int32(i)) ? s.serverKey.z85 : nil
        }
        try store.save(identities)
        if let failure { throw failure }
        return summary
    }

    private func check(api: AggregatorAPI?) throws(SimError) {
        let s = settings
        guard s.agents > 0 else { throw .badArgument("--agents", "must be at least 1") }
        guard s.threads > 0, s.threads <= 64 else { throw .badArgument("--threads", "must be 1 to 64") }
        switch s.scenario {
        case .steady: break
        case .failover:
            guard api != nil else { throw .badArgument("--api", "the failover scenario needs the aggregator's HTTP address (outages and rollout)") }
        case .reconnect:
            guard s.restartCommand != nil else { throw .badArgument("--restart-command", "the reconnect scenario needs the command that restarts the aggregator") }
        case .crash:
            guard s.restartCommand != nil else { throw .badArgument("--restart-command", "the crash scenario needs the command that kills and restarts the aggregator") }
            guard s.kills > 0 else { throw .badArgument("--kills", "the crash scenario needs at least one kill") }
            guard s.eventsPerInterval > 0 else { throw .badArgument("--events", "the crash scenario needs pull events (at least 1 per interval)") }
            guard s.ackedEventsFile != nil else { throw .badArgument("--acked-events", "the crash scenario writes the acknowledged events to this file") }
        }
    }

    // MARK: Phases

    /// Waits until every agent is connected as its host id; returns how long that took.
    private func waitForFleet(_ fleet: Fleet) async throws(SimError) -> Double {
        let deadline = max(600, settings.duration.seconds)
        var lastLine = 0.0
        while true {
            let t = fleet.totals()
            let now = fleet.elapsed()
            if let broken = fleet.workerFailure() { throw .aborted(broken) }
            if t.connected == settings.agents && t.enrolledNow == settings.agents { return now }
            if now - lastLine >= 5 {
                lastLine = now
                progress("t=\(Int(now))s connected \(t.connected)/\(settings.agents), enrolled \(t.enrolledNow), joins refused \(t.joinRefusals), auth failures \(t.authFailures)")
            }
            guard now < deadline else {
                throw .aborted("only \(t.connected) of \(settings.agents) agents connected (\(t.enrolledNow) enrolled) after \(Int(deadline)) s")
            }
            await sleep(0.1)
        }
    }

    private func steady(_ fleet: Fleet, before: ProcessSample?, into summary: inout SimSummary) async throws(SimError) {
        let start = aggregatorSample()
        let t0 = fleet.elapsed()
        progress("steady: all \(settings.agents) connected; measuring for \(Int(settings.duration.seconds)) s")
        await sleep(settings.duration.seconds)
        let end = aggregatorSample()
        let measured = fleet.elapsed() - t0
        summary.measuredSeconds = measured
        if let start, let end, start.pid == end.pid {
            summary.cpuShare = (end.cpuSeconds - start.cpuSeconds) / measured
            summary.rssBytes = end.rssBytes
            if let before, before.pid == end.pid {
                summary.rssPerConnectionBytes = (end.rssBytes - before.rssBytes) / settings.agents
            }
        }
    }

    private func failover(_ fleet: Fleet, api: AggregatorAPI, into summary: inout SimSummary) async throws(SimError) {
        progress("failover: all connected; \(settings.failoverFaultsDescription) after \(Int(settings.faultAfter.seconds)) s")
        await sleep(settings.faultAfter.seconds)
        let cpuAtFault = aggregatorSample()
        fleet.send(.faults(true))
        let tFault = fleet.elapsed()
        let deadline = tFault + settings.duration.seconds
        let expected = fleet.expectedAccepting()
        var lastCanaryPoll: Double?
        var generation: UInt64?
        var lastLine = 0.0
        while fleet.elapsed() < deadline {
            let now = fleet.elapsed()
            if summary.detectSeconds == nil, let outages = try? await api.outages(),
               outages.contains(where: { $0.state == "active" && $0.endpoint == ReportFactory.failingMirror }) {
                summary.detectSeconds = now - tFault
                progress("failover: outage of \(ReportFactory.failingMirror) open after \(String(format1: now - tFault)) s")
            }
            if let plans = try? await api.failovers(), let plan = plans.first(where: { $0.state != "advised" && (generation == nil || $0.generation == generation) }) {
                generation = plan.generation
                summary.finalRolloutState = plan.state
                if plan.state == "canary" { lastCanaryPoll = now }
                if plan.state == "complete" || plan.state == "halted" || plan.state == "rolled_back" { break }
            }
            let accepted = fleet.totals().acceptedAt.filter { !$0.isNaN }.count
            if accepted >= expected, summary.finalRolloutState != "canary" { break }
            if now - lastLine >= 5 {
                lastLine = now
                progress("failover: t+\(Int(now - tFault))s rollout \(summary.finalRolloutState ?? "none"), applied \(accepted)/\(expected)")
            }
            await sleep(0.1)
        }
        let end = aggregatorSample()
        summary.measuredSeconds = fleet.elapsed() - tFault
        await fleet.settle()
        if let cpuAtFault, let end, cpuAtFault.pid == end.pid { summary.cpuShare = (end.cpuSeconds - cpuAtFault.cpuSeconds) / summary.measuredSeconds! }
        let times = fleet.totals().acceptedAt.filter { !$0.isNaN }.sorted()
        guard let firstAccept = times.first else { return }
        // Canaries: the agents that had applied it while the rollout was still in its canary stage.
        let canaryCut = lastCanaryPoll ?? firstAccept
        let canaries = times.filter { $0 <= canaryCut }.count
        let full = times.filter { $0 > canaryCut }
        summary.canaries = canaries
        summary.fullStageAgents = expected - canaries
        if let start = full.first, expected > canaries {
            summary.fullStageAckedWithin10s = Double(full.filter { $0 <= start + 10 }.count) / Double(expected - canaries)
            if times.count >= expected { summary.allAckedSeconds = full.last! - start }
        }
        if times.count >= expected { summary.rolloutSeconds = times.last! - firstAccept }
    }

    private func reconnect(_ fleet: Fleet, into summary: inout SimSummary) async throws(SimError) {
        // Every agent reports at least once on the first aggregator before it dies.
        progress("reconnect: all connected; restarting the aggregator after one interval")
        await sleep(settings.interval.seconds + 5)
        fleet.send(.epoch(fleet.nextEpoch()))
        let tKill = fleet.elapsed()
        let status = try ShellCommand.run(settings.restartCommand!)
        summary.restartCommandSeconds = fleet.elapsed() - tKill
        guard status == 0 else { throw .aborted("the restart command exited with status \(status)") }
        let deadline = tKill + settings.duration.seconds
        var lastLine = 0.0
        while fleet.elapsed() < deadline {
            let back = fleet.totals().epochReportAt.filter { !$0.isNaN }.count
            if back == settings.agents { break }
            if fleet.elapsed() - lastLine >= 5 {
                lastLine = fleet.elapsed()
                progress("reconnect: t+\(Int(lastLine - tKill))s reporting again \(back)/\(settings.agents)")
            }
            await sleep(0.05)
        }
        if let sample = aggregatorSample() { summary.reconnectHandshakeCPUSeconds = sample.cpuSeconds }
        await fleet.settle()
        let t = fleet.totals()
        let handshakes = t.epochHandshakeAt.filter { !$0.isNaN }.sorted()
        if let first = handshakes.first, let last = handshakes.last {
            summary.reconnectSpreadSeconds = last - first
            var perSecond: [Int: Int] = [:]
            for h in handshakes { perSecond[Int(h - tKill), default: 0] += 1 }
            summary.reconnectPeakPerSecond = perSecond.values.max()
        }
        let reports = t.epochReportAt.filter { !$0.isNaN }
        if reports.count == settings.agents { summary.allReconnectedSeconds = reports.max()! - tKill }
        summary.measuredSeconds = fleet.elapsed() - tKill
    }

    private func crash(_ fleet: Fleet, into summary: inout SimSummary) async throws(SimError) {
        var rng = SystemRandomNumberGenerator()
        progress("crash: all connected; \(settings.kills) kills")
        for k in 1...settings.kills {
            await sleep(Double.random(in: settings.killEvery, using: &rng))
            fleet.send(.epoch(fleet.nextEpoch()))
            let status = try ShellCommand.run(settings.restartCommand!)
            guard status == 0 else { throw .aborted("the restart command exited with status \(status) at kill \(k)") }
            summary.kills = k
            if k % 10 == 0 {
                let t = fleet.totals()
                progress("crash: \(k)/\(settings.kills) kills, events sent \(t.eventsSent), acked \(t.eventsAcked)")
            }
        }
        // No new events; wait until the aggregator has acknowledged every one sent.
        fleet.send(.events(false))
        let deadline = fleet.elapsed() + 120 + 2 * settings.interval.seconds
        await fleet.settle()
        while fleet.elapsed() < deadline, fleet.totals().unackedNow > 0 { await sleep(0.2) }
        await fleet.settle()
        let t = fleet.totals()
        var text = ""
        text.reserveCapacity(t.ackedEvents.count * 20)
        for e in t.ackedEvents { text += "\(SimIdentityFile.hostID(prefix: settings.hostPrefix, index: Int(e.agent))) \(e.seq)\n" }
        let path = settings.ackedEventsFile!
        do { try AtomicFile.write(Array(text.utf8), to: path) } catch { throw .file(path, "cannot write: \(error)") }
        if t.unackedNow > 0 { progress("crash: \(t.unackedNow) events still unacknowledged at the deadline") }
    }

    // MARK: Helpers

    private func fill(_ summary: inout SimSummary, _ t: ShardStats) {
        summary.connected = t.connected
        summary.enrolledThisRun = t.joinedThisRun
        summary.reportsSent = t.reportsSent
        summary.reportsDropped = t.reportsDropped
        summary.eventsSent = t.eventsSent
        summary.eventsResent = t.eventsResent
        summary.eventsAcked = t.eventsAcked
        summary.eventsUnacked = t.unackedNow
        summary.joinsSent = t.joinsSent
        summary.joinRefusals = t.joinRefusals
        summary.authFailures = t.authFailures
        summary.disconnects = t.disconnects
        summary.commandsReceived = t.commandsReceived
        summary.acks = t.acksByOutcome
        summary.rejectReasons = t.rejectReasons
    }

    private func aggregatorSample() -> ProcessSample? {
        guard let file = settings.aggregatorPIDFile, let pid = ProcessSample.pid(inFile: file) else { return nil }
        return ProcessSample.read(pid: pid)
    }

    /// Soft open-files limit raised to the hard one (raising the hard one needs CAP_SYS_RESOURCE).
    static func raiseFileLimit() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    static func fileLimit() -> Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(min(limit.rlim_cur, 1 << 24))
    }

    private func sleep(_ seconds: Double) async {
        try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }
}

/// The fleet seen together: this process's slice and the workers' latest figures.
final class Fleet: Sendable {
    let local: FleetSlice
    let workers: [WorkerLink]
    let startMs: Int64
    let identities: [SimIdentity]
    let faults: [Fault]
    private let epoch = Atomic<Int>(0)

    init(local: FleetSlice, workers: [WorkerLink], startMs: Int64, identities: [SimIdentity], faults: [Fault]) {
        self.local = local
        self.workers = workers
        self.startMs = startMs
        self.identities = identities
        self.faults = faults
    }

    func elapsed() -> Double { Double(monotonicNow() - startMs) / 1000 }

    func totals() -> ShardStats {
        var t = local.stats()
        for w in workers { if let s = w.latest { t.add(s) } }
        return t
    }

    /// Waits until every worker's figures are newer than now (they print every 250 ms).
    func settle() async {
        guard !workers.isEmpty else { return }
        try? await Task.sleep(for: .milliseconds(600))
    }

    func workerFailure() -> String? { workers.lazy.compactMap(\.failure).first }

    func nextEpoch() -> Int { epoch.add(1, ordering: .relaxed).newValue }

    /// Applies a command here and in every worker.
    func send(_ command: WorkerLink.Command) {
        switch command {
        case .faults(let on): local.control.faultsOn.store(on, ordering: .relaxed)
        case .events(let on): local.control.eventsOn.store(on, ordering: .relaxed)
        case .epoch(let n): local.control.epoch.store(n, ordering: .relaxed)
        case .stop: break
        }
        for w in workers { w.send(command) }
    }

    /// Agents the rollout must reach: every one but those scripted silent.
    func expectedAccepting() -> Int {
        identities.indices.filter { i in !faults.contains { $0.kind == .silent && $0.applies(index: i, labels: identities[i].labels) } }.count
    }
}

func monotonicNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

extension String {
    /// One decimal, for progress lines.
    init(format1 value: Double) { self = String(Double(Int(value * 10)) / 10) }
}

extension SimSettings {
    /// The aggregator's command-signing key, pinned as the agent pins it.
    func commandVerifier() throws(SimError) -> CommandVerifier {
        do { return CommandVerifier(key: try KeyFiles.readSigningPublicKey(signingKeyFile)) } catch {
            throw .file(signingKeyFile, error.description)
        }
    }

    var failoverFaultsDescription: String {
        faults.isEmpty ? "no fault" : faults.map(\.description).joined(separator: ", ")
    }
}
