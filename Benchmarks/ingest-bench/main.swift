// regwatch-ingest-bench: reports/s that the real `regwatch-aggregator serve` stores, sent by emulated agents
// (one DealerClient per host, CURVE, enrolled keys) in this process, side by side with a raw sqlite3
// prepared-statement insert of the same rows measured in the same run; and the aggregator's CPU share at
// 3,300 reports/s (100k agents at a 30 s interval). The aggregator's CPU comes from /proc/PID/stat.
//
//   regwatch-ingest-bench [--quick] [[--aggregator] PATH] [--agents N] [--reports N] [--raw-batch N] [--keep] [--raw-only]
//   (PATH defaults to .build/release/regwatch-aggregator; BENCH_VERBOSE=1 prints progress)
import Foundation
import GRDBSQLite
import Logging
import RegwatchAggregator
import RegwatchBenchSupport
import RegwatchShared
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// MARK: Options

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? { benchOption(name, in: arguments) }
let quick = arguments.contains("--quick")
/// The aggregator binary: `--aggregator PATH` or the first argument that is not an option.
let positional = arguments.enumerated().first { i, a in
    !a.hasPrefix("--") && (i == 0 || !["--aggregator", "--agents", "--reports", "--raw-batch"].contains(arguments[i - 1]))
}?.element
let aggregatorPath = option("--aggregator") ?? positional ?? ".build/release/regwatch-aggregator"
let agentCount = Int(option("--agents") ?? "") ?? 64
let burstCount = Int(option("--reports") ?? "") ?? (quick ? 50_000 : 300_000)
let pacedRate = 3_300.0
let pacedSeconds = quick ? 6.0 : 20.0
/// Reports per raw transaction: what the aggregator's group commit gathers under saturation.
let rawBatch = Int(option("--raw-batch") ?? "") ?? 512
/// Reports sent and not yet stored, at most: keeps the aggregator saturated without queueing gigabytes.
let window = 16_384
let probesPerReport = 5

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("regwatch-ingest-bench: \(message)\n".utf8))
    exit(1)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func sleep(seconds: Double) {
    guard seconds > 0 else { return }
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}

// MARK: Receive floor

/// `--receive-floor ENDPOINT KEYSDIR`: this binary run as a second process that only receives, through
/// the aggregator's own transport (RouterServer, CURVE, the enrollment check), and discards. Its CPU at
/// 3,300 reports/s is what any aggregator on this machine pays before decoding or storing anything.
/// Prints `ready` once bound, then `received N` for every line read from stdin; exits when stdin closes.
if let i = arguments.firstIndex(of: "--receive-floor"), i + 2 < arguments.count {
    let logger = Logger(label: "receive-floor", factory: { _ in SwiftLogNoOpLogHandler() })
    do {
        let keys = try ServerKeys.load(keysDir: arguments[i + 2])
        let router = RouterServer(configuration: .init(endpoint: arguments[i + 1], security: .curve(serverKeys: keys.transport)),
                                  authenticator: EnrollmentAuthenticator(keysDir: arguments[i + 2], logger: logger), logger: logger)
        _ = try router.start()
        let received = Atomic<Int>(0)
        Task.detached {
            for await batch in router.inbound.batched { received.add(batch.count, ordering: .relaxed) }
        }
        print("ready")
        fflush(nil)
        while readLine() != nil {
            print("received \(received.load(ordering: .relaxed))")
            fflush(nil)
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("regwatch-ingest-bench --receive-floor: \(error)\n".utf8))
        exit(1)
    }
}

// MARK: Processes

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
func cpuSeconds(pid: Int32) -> Double { processCPUSeconds(pid, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK)))) }

func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func peakRSSMiB(pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kb / 1024
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, len) } }
    withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A minimal `GET` on 127.0.0.1; nil when nothing answers.
func httpGet(port: Int, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard write(fd, request, request.count) == request.count else { return nil }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        response += chunk[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let body = text.range(of: "\r\n\r\n") else { return nil }
    return String(text[body.upperBound...])
}

/// The value of an unlabelled Prometheus counter in a /metrics exposition.
func metric(_ name: String, in text: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ")[1])
    }
    return nil
}

// MARK: Reports

/// RFC 3339 UTC with milliseconds, as `RFC3339.format` writes it, without Foundation's formatter (the
/// sender must not be the bottleneck); checked against `RFC3339.format` at start-up.
func rfc3339(ms: Int64) -> [UInt8] {
    var t = time_t(ms / 1000)
    var tm = tm()
    gmtime_r(&t, &tm)
    var out: [UInt8] = []
    out.reserveCapacity(24)
    func put(_ v: Int, _ digits: Int) {
        var d = 1
        for _ in 1..<digits { d *= 10 }
        var v = v
        while d > 0 { out.append(UInt8(48 + v / d)); v %= d; d /= 10 }
    }
    put(Int(tm.tm_year) + 1900, 4); out.append(45); put(Int(tm.tm_mon) + 1, 2); out.append(45); put(Int(tm.tm_mday), 2)
    out.append(84); put(Int(tm.tm_hour), 2); out.append(58); put(Int(tm.tm_min), 2); out.append(58); put(Int(tm.tm_sec), 2)
    out.append(46); put(Int(ms % 1000), 3); out.append(90)
    return out
}

/// A host's encoded report envelope, split where the sequence number and the times go, so each
/// message is a few copies instead of a JSONEncoder run.
struct PayloadTemplate {
    enum Hole { case seq, time }
    var parts: [[UInt8]] = []
    var holes: [Hole] = []

    static let sentinelSeq: UInt64 = 918_273_645_546_372_819
    static let sentinelDate = Date(timeIntervalSince1970: 978_307_200)

    init(report: Report, host: String) throws {
        let bytes = try WireCodec().encode(Envelope(host: host, seq: Self.sentinelSeq, sentAt: Self.sentinelDate, body: report))
        let seqText = Array(String(Self.sentinelSeq).utf8)
        let timeText = Array(RFC3339.format(Self.sentinelDate).utf8)
        var current: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i...].starts(with: seqText) {
                parts.append(current); holes.append(.seq); current = []; i += seqText.count
            } else if bytes[i...].starts(with: timeText) {
                parts.append(current); holes.append(.time); current = []; i += timeText.count
            } else {
                current.append(bytes[i]); i += 1
            }
        }
        parts.append(current)
    }

    func render(seq: UInt64, time: [UInt8]) -> [UInt8] {
        let seqText = Array(String(seq).utf8)
        var out: [UInt8] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count } + holes.count * 24)
        for (n, hole) in holes.enumerated() {
            out += parts[n]
            out += hole == .seq ? seqText : time
        }
        out += parts[parts.count - 1]
        return out
    }
}

/// The emulated fleet: per host its template and its cycle counter. One producer thread uses it.
final class EmulatedFleet: @unchecked Sendable {
    let hosts: [String]
    let templates: [PayloadTemplate]
    let reports: [Report]
    /// Cycle times start here and advance 1 ms per report of a host: strictly increasing, recent enough
    /// for the aggregator to record phase timings (it skips reports older than an hour).
    let baseMs: Int64
    var cycles: [Int64]
    var next = 0

    init(count: Int) throws {
        hosts = (0..<count).map { String(format: "bench-%04d", $0) }
        baseMs = Int64(Date().timeIntervalSince1970 - 1800) * 1000
        reports = hosts.enumerated().map { makeSampleReport(host: $0.element, index: $0.offset, cycle: PayloadTemplate.sentinelDate) }
        templates = try zip(hosts, reports).map { try PayloadTemplate(report: $0.1, host: $0.0) }
        cycles = Array(repeating: 0, count: count)
    }

    /// The next report, round robin over the hosts `burst` reports at a time: (host index, payload).
    /// Bursts let each emulated agent's I/O thread send several messages per wake-up, so the load
    /// generator, which shares the machine with the aggregator, stays cheap.
    func nextPayload(burst: Int = 1) -> (Int, [UInt8]) {
        let h = (next / burst) % hosts.count
        next += 1
        cycles[h] += 1
        return (h, templates[h].render(seq: UInt64(cycles[h]), time: rfc3339(ms: baseMs + cycles[h])))
    }
}

// MARK: Store progress

/// Polls how many reports the aggregator has stored: every stored report added one `probe_report` row
/// (ids are rowids, never reused while the bench runs), read through a read-only connection so polling
/// costs the aggregator nothing but a WAL read lock.
final class StoredCounter: @unchecked Sendable {
    let stored = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    private var db: OpaquePointer?
    private var statement: OpaquePointer?

    init(path: String) {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK else { fail("cannot open \(path) read-only") }
        sqlite3_busy_timeout(db, 1000)
        guard sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM probe_report", -1, &statement, nil) == SQLITE_OK else {
            fail("cannot query \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func poll() -> Int {
        var n = 0
        if sqlite3_step(statement) == SQLITE_ROW { n = Int(sqlite3_column_int64(statement, 0)) }
        sqlite3_reset(statement)
        stored.store(n, ordering: .releasing)
        return n
    }

    func start() {
        let thread = Thread { [self] in
            while !stop.load(ordering: .relaxed) {
                _ = poll()
                sleep(seconds: 0.002)
            }
            sqlite3_finalize(statement)
            sqlite3_close(db)
        }
        thread.start()
    }

    /// Waits until nothing more is stored for `quiet` seconds (a backlog drained, or reports lost); the count.
    func settle(quiet: Double = 2) -> Int {
        var last = stored.load(ordering: .acquiring), since = now()
        while now() - since < quiet {
            sleep(seconds: 0.05)
            let n = stored.load(ordering: .acquiring)
            if n != last { last = n; since = now() }
        }
        return last
    }

    /// Waits until at least `count` reports are stored; false on timeout.
    func wait(for count: Int, timeout: Double) -> Bool {
        let deadline = now() + timeout
        while stored.load(ordering: .acquiring) < count {
            if now() > deadline { return false }
            sleep(seconds: 0.001)
        }
        return true
    }
}

/// Sends `count` reports round robin over the dealers, as fast as the window allows (reports sent and
/// not stored since `base` reports were stored) or at `rate`. Returns when the last one was handed over.
func send(_ count: Int, fleet: EmulatedFleet, dealers: [DealerClient], counter: StoredCounter, base: Int, rate: Double? = nil, burst: Int = 1) -> Double {
    let start = now()
    for i in 0..<count {
        if let rate {
            let due = start + Double(i) / rate
            let ahead = due - now()
            if ahead > 0.0005 { sleep(seconds: ahead) }
        } else {
            while i - (counter.stored.load(ordering: .acquiring) - base) > window { sleep(seconds: 0.0002) }
        }
        let (h, payload) = fleet.nextPayload(burst: burst)
        while !dealers[h].trySend(payload) { sleep(seconds: 0.0001) }
    }
    return now()
}

// MARK: Raw reference


/// The same rows the aggregator writes per report (the host row with its latest probe states, one
/// probe_report row of samples), the same values, with the sqlite3 C API: statements prepared once, one
/// transaction per `rawBatch` reports, WAL, synchronous=NORMAL, foreign keys on, into a fresh file with
/// the same schema.
func rawRun(dir: String, fleet: EmulatedFleet, count: Int, batch: Int = rawBatch, file: String = "raw.db") throws -> Double {
    let path = "\(dir)/\(file)"
    // The schema exactly as the aggregator creates it.
    do { _ = try FleetStore(path: path) }
    var db: OpaquePointer?
    // Multi-thread mode, as GRDB opens its connections.
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else { fail("cannot open \(path)") }
    defer { sqlite3_close(db) }
    func exec(_ sql: String) {
        if sqlite3_exec(db, sql, nil, nil, nil) != SQLITE_OK { fail("\(sql): \(String(cString: sqlite3_errmsg(db)))") }
    }
    exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
    func prepare(_ sql: String) -> OpaquePointer? {
        var s: OpaquePointer?
        if sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil) != SQLITE_OK { fail("\(sql): \(String(cString: sqlite3_errmsg(db)))") }
        return s
    }
    let host = prepare("""
        INSERT INTO host (id, labels, zone, egress, agentVersion, intervalSeconds, appliedGeneration, mirrorPools, eventSources,
                          firstSeen, lastSeen, lastCycleStartedAt, connected, lastReportSeq, runtimeCount, probes, probesObservedAt)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, 1, ?12, 0, ?13, ?10)
        ON CONFLICT (id) DO UPDATE SET labels = ?2, zone = ?3, egress = ?4, agentVersion = ?5, intervalSeconds = ?6,
            appliedGeneration = ?7, mirrorPools = ?8, eventSources = ?9, lastSeen = ?10, lastCycleStartedAt = ?11, connected = 1,
            lastReportSeq = ?12, runtimeCount = 0, probes = ?13, probesObservedAt = ?10
        """)
    let sample = prepare("INSERT INTO probe_report (hostId, observedAt, probes) VALUES (?, ?, ?)")
    defer { for s in [host, sample] { sqlite3_finalize(s) } }

    let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    func text(_ s: OpaquePointer?, _ i: Int32, _ v: String?) {
        guard var v else { sqlite3_bind_null(s, i); return }
        v.withUTF8 { buffer in
            let bytes = UnsafeRawPointer(buffer.baseAddress ?? ("" as StaticString).utf8Start)
            sqlite3_bind_text(s, i, bytes.assumingMemoryBound(to: CChar.self), Int32(buffer.count), transient)
        }
    }
    func real(_ s: OpaquePointer?, _ i: Int32, _ v: Double?) {
        if let v { sqlite3_bind_double(s, i, v) } else { sqlite3_bind_null(s, i) }
    }
    func int(_ s: OpaquePointer?, _ i: Int32, _ v: Int?) {
        if let v { sqlite3_bind_int64(s, i, Int64(v)) } else { sqlite3_bind_null(s, i) }
    }
    func step(_ s: OpaquePointer?) {
        if sqlite3_step(s) != SQLITE_DONE { fail("raw insert: \(String(cString: sqlite3_errmsg(db)))") }
        sqlite3_reset(s)
    }
    // Per host: the JSON columns, as the aggregator would write them (made once: the reference is SQLite's cost).
    let json = fleet.reports.map { r -> (String, String, String, String, String) in
        let labels = "{" + r.host.labels.keys.sorted().map { "\"\($0)\":\"\(r.host.labels[$0]!)\"" }.joined(separator: ",") + "}"
        let pools = "{\"docker.io\":[{\"authenticated\":false,\"insecure\":false,\"trusted\":true,\"url\":\"https://mirror-a.internal:5000\"},{\"authenticated\":false,\"insecure\":false,\"trusted\":false,\"url\":\"https://mirror-b.internal:5000\"}]}"
        let sources = "[{\"detail\":\"streaming /var/run/docker.sock\",\"name\":\"docker-events\",\"state\":\"active\"}]"
        let latest = ProbeStateText.Latest(r.probes).text(receivedAt: Date().timeIntervalSince1970)
        return (labels, pools, sources, String(decoding: latest, as: UTF8.self), String(decoding: ProbeStateText.samples(r.probes), as: UTF8.self))
    }
    var cycles = Array(repeating: Int64(1_000_000), count: fleet.hosts.count)
    let start = now()
    var done = 0
    while done < count {
        exec("BEGIN IMMEDIATE")
        let end = min(count, done + batch)
        let received = Date().timeIntervalSince1970
        for n in done..<end {
            let h = n % fleet.hosts.count
            let r = fleet.reports[h]
            cycles[h] += 1
            let cycle = Double(fleet.baseMs + cycles[h]) / 1000
            text(host, 1, fleet.hosts[h]); text(host, 2, json[h].0); text(host, 3, r.host.zone); text(host, 4, r.host.egress)
            text(host, 5, r.agentVersion); real(host, 6, r.intervalSeconds); int(host, 7, Int(r.appliedGeneration))
            text(host, 8, json[h].1); text(host, 9, json[h].2); real(host, 10, received); real(host, 11, cycle)
            int(host, 12, Int(cycles[h])); text(host, 13, json[h].3)
            step(host)
            text(sample, 1, fleet.hosts[h]); real(sample, 2, received); text(sample, 3, json[h].4)
            step(sample)
        }
        exec("COMMIT")
        done = end
    }
    let elapsed = now() - start
    var check: OpaquePointer?
    sqlite3_prepare_v2(db, "SELECT count(*) FROM probe_sample", -1, &check, nil)
    sqlite3_step(check)
    let samples = Int(sqlite3_column_int64(check, 0))
    sqlite3_finalize(check)
    if samples != count * probesPerReport { fail("raw reference wrote \(samples) samples, expected \(count * probesPerReport)") }
    return Double(count) / elapsed
}

// MARK: Floor

/// What the transport alone costs and carries on this machine, with the same emulated agents.
struct ReceiveFloor {
    /// CPU share of the receiving process while `pacedRate` reports/s were sent.
    var pacedShare: Double
    /// Reports/s it received when sent as fast as the window allows, and its CPU in cores meanwhile.
    var burstRate: Double
    var burstCores: Double
    var received: Int
    var sent: Int
}

/// Runs this binary with `--receive-floor`, connects fresh emulated agents to it, sends `pacedRate`
/// reports/s for `pacedSeconds`, then `burstCount` as fast as the window allows.
@MainActor func measureReceiveFloor() async throws -> ReceiveFloor {
    let port = freePort()
    let sink = Process()
    sink.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    sink.arguments = ["--receive-floor", "tcp://127.0.0.1:\(port)", keysDir]
    let input = Pipe(), output = Pipe()
    sink.standardInput = input
    sink.standardOutput = output
    _ = fm.createFile(atPath: "\(dir)/receive-floor.log", contents: nil)
    sink.standardError = FileHandle(forWritingAtPath: "\(dir)/receive-floor.log")
    try sink.run()
    var said = ""
    /// The next line the process prints.
    func line() -> String {
        while !said.contains("\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { fail("the receive-floor process stopped; see \(dir)/receive-floor.log (run with --keep)") }
            said += String(decoding: data, as: UTF8.self)
        }
        let end = said.firstIndex(of: "\n")!
        defer { said = String(said[said.index(after: end)...]) }
        return String(said[..<end])
    }
    func received() -> Int {
        input.fileHandleForWriting.write(Data("\n".utf8))
        return Int(line().dropFirst("received ".count)) ?? -1
    }
    guard line() == "ready" else { fail("the receive-floor process did not start") }
    let clients = zip(fleet.hosts, agentKeys).map { host, keys in
        DealerClient(configuration: .init(endpoint: "tcp://127.0.0.1:\(port)", hostID: host, security: .curve(serverKey: serverKeys.transport.publicKey, clientKeys: keys)), logger: logger)
    }
    for c in clients { try c.start() }
    let deadline = now() + 30
    while clients.contains(where: { $0.statistics.state != .connected }) {
        if now() > deadline { fail("agents did not connect to the receive-floor process") }
        sleep(seconds: 0.01)
    }
    sleep(seconds: 0.5)
    let pid = sink.processIdentifier
    let cpu0 = cpuSeconds(pid: pid), t0 = now()
    let sentAt = send(pacedCount, fleet: fleet, dealers: clients, counter: counter, base: 0, rate: pacedRate)
    let pacedShare = (cpuSeconds(pid: pid) - cpu0) / (sentAt - t0)
    sleep(seconds: 0.5)

    // As fast as the window allows, like the aggregator's burst.
    let base = received()
    let cpu1 = cpuSeconds(pid: pid), t1 = now()
    for i in 0..<burstCount {
        if i % 1024 == 0 { while i - (received() - base) > window { sleep(seconds: 0.0005) } }
        let (h, payload) = fleet.nextPayload(burst: 32)
        while !clients[h].trySend(payload) { sleep(seconds: 0.0001) }
    }
    var got = received() - base, last = now()
    while got < burstCount && now() - last < 2 {
        sleep(seconds: 0.001)
        let n = received() - base
        if n != got { got = n; last = now() }
    }
    let burstRate = Double(got) / (last - t1), burstCores = (cpuSeconds(pid: pid) - cpu1) / (last - t1)
    let total = received()
    for c in clients { await c.shutdown() }
    try input.fileHandleForWriting.close()
    sink.waitUntilExit()
    return ReceiveFloor(pacedShare: pacedShare, burstRate: burstRate, burstCores: burstCores, received: total, sent: pacedCount + burstCount)
}

/// CPU seconds per report of `WireCodec.decode` on the bench's payloads (one thread, nothing else).
@MainActor func measureDecode(count: Int) -> Double {
    let payloads = (0..<fleet.hosts.count).map { fleet.templates[$0].render(seq: 1, time: rfc3339(ms: fleet.baseMs + 1)) }
    let codec = WireCodec()
    var probes = 0
    let start = ownCPUSeconds()
    for i in 0..<count {
        if case .report(let env)? = try? codec.decode(payloads[i % payloads.count]) { probes += env.body.probes.count }
    }
    let seconds = ownCPUSeconds() - start
    if probes != count * probesPerReport { fail("decoding the payloads gave \(probes) probes, expected \(count * probesPerReport)") }
    return seconds / Double(count)
}

// MARK: Run

let fm = FileManager.default
guard fm.isExecutableFile(atPath: aggregatorPath) else {
    fail("\(aggregatorPath) is not an executable; build it with `swift build -c release --product regwatch-aggregator` or pass --aggregator PATH")
}
let dir = fm.temporaryDirectory.appendingPathComponent("regwatch-ingest-bench-\(getpid())").path
try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { if !arguments.contains("--keep") { try? fm.removeItem(atPath: dir) } }

// Sanity: the hand-written time format is the wire's.
let probeDate = Date(timeIntervalSince1970: 1_764_000_123.456)
guard String(decoding: rfc3339(ms: 1_764_000_123_456), as: UTF8.self) == RFC3339.format(probeDate) else {
    fail("rfc3339(ms:) differs from RFC3339.format: \(String(decoding: rfc3339(ms: 1_764_000_123_456), as: UTF8.self)) vs \(RFC3339.format(probeDate))")
}

// Keys: the aggregator's, and one enrolled CURVE key pair per emulated agent.
let keysDir = "\(dir)/keys"
_ = try ServerKeys.generateMissing(keysDir: keysDir)
let serverKeys = try ServerKeys.load(keysDir: keysDir)
let fleet = try EmulatedFleet(count: agentCount)
let enrollment = EnrollmentStore(keysDir: keysDir)
var agentKeys: [CurveKeyPair] = []
for host in fleet.hosts {
    let pair = try CurveKeyPair.generate()
    _ = try enrollment.accept(host: host, key: pair.publicKey)
    agentKeys.append(pair)
}

// One rendered payload decodes to the report it stands for.
do {
    let probe = fleet.templates[0].render(seq: 7, time: rfc3339(ms: fleet.baseMs + 7))
    guard case .report(let env) = try WireCodec().decode(probe), env.seq == 7, env.host == fleet.hosts[0],
          env.body.probes.count == probesPerReport, env.body.cycleStartedAt.timeIntervalSince1970 == Double(fleet.baseMs + 7) / 1000 else {
        fail("rendered payload does not decode to the intended report")
    }
}
let payloadBytes = fleet.templates[0].render(seq: 1, time: rfc3339(ms: fleet.baseMs)).count

if arguments.contains("--raw-only") {
    // The reference alone, e.g. to compare transaction sizes: --raw-only --raw-batch 50
    print("raw sqlite3: \(Int(try rawRun(dir: dir, fleet: fleet, count: burstCount))) reports/s, \(rawBatch) per transaction")
    try? fm.removeItem(atPath: dir)
    exit(0)
}

let zmqPort = freePort(), httpPort = freePort()
let database = "\(dir)/regwatch.db"
try """
listen: {zmq: "tcp://127.0.0.1:\(zmqPort)", http: "127.0.0.1:\(httpPort)"}
database: \(database)
keys: {dir: \(keysDir)}
""".write(toFile: "\(dir)/aggregator.yaml", atomically: true, encoding: .utf8)

let aggregator = Process()
aggregator.executableURL = URL(fileURLWithPath: aggregatorPath)
aggregator.arguments = ["serve", "--config", "\(dir)/aggregator.yaml"]
_ = fm.createFile(atPath: "\(dir)/aggregator.log", contents: nil)
aggregator.standardError = FileHandle(forWritingAtPath: "\(dir)/aggregator.log")
aggregator.standardOutput = FileHandle.nullDevice
try aggregator.run()
let pid = aggregator.processIdentifier
func stopAggregator() {
    guard aggregator.isRunning else { return }
    kill(pid, SIGTERM)
    aggregator.waitUntilExit()
}
/// On a failed wait: the aggregator's own counters, then stop it.
func diagnose() {
    let text = httpGet(port: httpPort, path: "/metrics") ?? ""
    for line in text.split(separator: "\n") where line.hasPrefix("regwatch_reports") || line.hasPrefix("regwatch_wire") {
        FileHandle.standardError.write(Data("  \(line)\n".utf8))
    }
    stopAggregator()
}
let verbose = ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil
func progress(_ message: String) {
    if verbose { FileHandle.standardError.write(Data("[\(String(format: "%.1f", now()))] \(message)\n".utf8)) }
}
var up = false
for _ in 0..<500 where !up {
    if httpGet(port: httpPort, path: "/healthz") != nil { up = true } else { sleep(seconds: 0.02) }
}
guard up else {
    stopAggregator()
    fail("aggregator did not come up; see \(dir)/aggregator.log (run with --keep)")
}

let logger = Logger(label: "ingest-bench", factory: { _ in SwiftLogNoOpLogHandler() })
let dealers = zip(fleet.hosts, agentKeys).map { host, keys in
    DealerClient(configuration: .init(endpoint: "tcp://127.0.0.1:\(zmqPort)", hostID: host, security: .curve(serverKey: serverKeys.transport.publicKey, clientKeys: keys)), logger: logger)
}
for d in dealers { try d.start() }
let connectDeadline = now() + 30
while dealers.contains(where: { $0.statistics.state != .connected }) {
    if now() > connectDeadline { stopAggregator(); fail("agents did not connect (CURVE/ZAP); see \(dir)/aggregator.log") }
    sleep(seconds: 0.01)
}

print("regwatch-ingest-bench: \(agentCount) emulated agents (DealerClient, CURVE, enrolled keys) -> regwatch-aggregator serve (pid \(pid));")
print("reports of \(probesPerReport) probes, \(payloadBytes) bytes as JSON; one run, aggregator and raw reference measured back to back")
print("")

let counter = StoredCounter(path: database)
counter.start()

// Idle cost: what the aggregator spends with agents connected and nothing arriving.
let idleSeconds = quick ? 1.0 : 3.0
let idle0 = cpuSeconds(pid: pid), idleT0 = now()
sleep(seconds: idleSeconds)
let idleShare = (cpuSeconds(pid: pid) - idle0) / (now() - idleT0)

// Each phase waits for its reports to be stored; an aggregator that falls behind (or loses reports,
// as the one before the ingest work did at 3,300/s) is given 30 s more, then measured as it stands.
var sent = 0, lost = 0
/// Returns what was stored, the time until it was, the aggregator's CPU seconds over that time, and its
/// CPU share while the reports were being sent (the paced figure: a backlog drained later is not in it).
@MainActor func phase(_ count: Int, rate: Double? = nil, burst: Int = 1) -> (stored: Int, elapsed: Double, cpu: Double, sendingShare: Double) {
    let base = counter.settle(quiet: 0.2)
    let cpu0 = cpuSeconds(pid: pid), t0 = now()
    let sentAt = send(count, fleet: fleet, dealers: dealers, counter: counter, base: base, rate: rate, burst: burst)
    let sendingShare = (cpuSeconds(pid: pid) - cpu0) / (sentAt - t0)
    sent += count
    var stored = count
    if !counter.wait(for: base + count, timeout: 30 + (rate.map { _ in 0 } ?? Double(count) / 500)) {
        stored = counter.settle() - base
        lost += count - stored
        FileHandle.standardError.write(Data("regwatch-ingest-bench: only \(stored) of \(count) reports stored\n".utf8))
    }
    let elapsed = now() - t0
    return (stored, elapsed, cpuSeconds(pid: pid) - cpu0, sendingShare)
}

// Warm-up: every host's rows exist, statements are cached; steady state is "update in place".
_ = phase(agentCount * 20)
progress("warm-up stored")

// Paced: 3,300 reports/s, what 100k agents at a 30 s interval send. Measured first, so that it ends
// before the aggregator's first maintenance run (60 s after start), which rolls up the burst's samples.
let pacedCount = Int(pacedRate * pacedSeconds)
let paced = phase(pacedCount, rate: pacedRate)
let pacedShare = paced.sendingShare
progress("paced: \(String(format: "%.1f", pacedShare * 100)) % of a core")

// Saturated: as fast as the window lets the producer go. Dirty pages are flushed first, here and
// before the raw reference, so neither measurement pays for the other's writeback.
sync()
let own0 = ownCPUSeconds()
let burstRun = phase(burstCount, burst: 32)
let ownBurstCPU = ownCPUSeconds() - own0
let storedRate = Double(burstRun.stored) / burstRun.elapsed
progress("burst: \(Int(storedRate)) reports/s, aggregator \(String(format: "%.2f", burstRun.cpu / burstRun.elapsed)) cores")

// The aggregator's own count agrees with the database (its counter moves just after each commit).
let storedTotal = counter.settle(quiet: 0.2)
var ingested = -1, dropped = 0
for _ in 0..<100 {
    let metrics = httpGet(port: httpPort, path: "/metrics") ?? ""
    ingested = Int(metric(MetricNames.reportsIngestedTotal, in: metrics) ?? -1)
    dropped = Int(metric(MetricNames.reportsDroppedTotal, in: metrics) ?? 0)
    if ingested >= storedTotal { break }
    sleep(seconds: 0.05)
}
let rss = peakRSSMiB(pid: pid)
counter.stop.store(true, ordering: .relaxed)
for d in dealers { await d.shutdown() }
stopAggregator()
if ingested != storedTotal {
    fail("aggregator reports \(ingested) ingested, the database holds \(storedTotal)")
}

// Raw reference, with the aggregator stopped so it has the machine to itself as the aggregator had.
sync()
let rawRate = try rawRun(dir: dir, fleet: fleet, count: burstCount)
let ratio = storedRate / rawRate

// The floor under the paced figure on this machine, measured in the same run: receiving through the
// transport in a process that does nothing else, decoding each report, and SQLite writing its rows in
// transactions of what the aggregator gathers at that rate (its commit linger).
progress("floor")
let receiveFloor = try await measureReceiveFloor()
let decodeSeconds = measureDecode(count: quick ? 20_000 : 100_000)
let pacedBatch = Int(pacedRate * IngestService.CommitPolicy().linger.seconds)
let rawPacedRate = try rawRun(dir: dir, fleet: fleet, count: pacedCount, batch: pacedBatch, file: "raw-paced.db")
let floorParts = (receive: receiveFloor.pacedShare, decode: decodeSeconds * pacedRate, sqlite: pacedRate / rawPacedRate)
let floorShare = floorParts.receive + floorParts.decode + floorParts.sqlite

func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
let rows: [(String, String, String)] = [
    ("stored by regwatch-aggregator", "\(fmt(storedRate)) reports/s", "\(burstRun.stored) reports in \(fmt(burstRun.elapsed, 2)) s; aggregator CPU \(fmt(burstRun.cpu / burstRun.elapsed, 2)) cores, bench \(fmt(ownBurstCPU / burstRun.elapsed, 2))"),
    ("raw sqlite3 prepared statements", "\(fmt(rawRate)) reports/s", "same rows and values, \(rawBatch) reports per transaction, WAL, synchronous=NORMAL"),
    ("ratio stored / raw", fmt(ratio, 2), "goal >= 0.50"),
    ("stored reports/s", fmt(storedRate), "goal >= 30000"),
    ("aggregator CPU at 3300 reports/s", "\(fmt(pacedShare * 100, 1)) % of one core", "goal < 15 %; idle \(fmt(idleShare * 100, 1)) %, \(paced.stored) of \(pacedCount) stored, the last \(fmt(paced.elapsed - pacedSeconds, 1)) s after sending ended"),
    ("received by the transport alone", "\(fmt(receiveFloor.burstRate)) reports/s", "a process that only receives (RouterServer, CURVE, enrollment) and discards, \(fmt(receiveFloor.burstCores, 2)) cores; \(receiveFloor.received) of \(receiveFloor.sent) received"),
    ("floor at 3300 reports/s", "\(fmt(floorShare * 100, 1)) % of one core", "receive only \(fmt(floorParts.receive * 100, 1)) %, decode \(fmt(floorParts.decode * 100, 1)) %, raw SQLite \(fmt(floorParts.sqlite * 100, 1)) % (\(pacedBatch) per transaction)"),
    ("aggregator above the floor", "\(fmt((pacedShare - floorShare) * 100, 1)) % of one core", "\(fmt((pacedShare - floorShare) / pacedRate * 1e6, 1)) us per report"),
    ("aggregator peak RSS", "\(fmt(rss)) MiB", "\(sent) reports sent, \(ingested) ingested, \(dropped) counted as dropped, \(lost) lost"),
]
let w0 = rows.map(\.0.count).max()!, w1 = rows.map(\.1.count).max()!
for r in rows {
    print(r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + r.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + r.2)
}
print("")
let goals = ratio >= 0.5 && storedRate >= 30_000 && pacedShare < 0.15 && lost == 0
print(goals ? "all goals met" : "goals NOT met")
