// regwatch-ha-bench: ingest into PostgreSQL side by side with SQLite and with a raw COPY of the same rows,
// measured in the same run; the rows and bytes a report costs in PostgreSQL (the sizing in docs/ha.md);
// and the reports/s that two `regwatch-aggregator serve` sharing one PostgreSQL database store together
// against one, under load from `regwatch-fleetsim`.
//
//   regwatch-ha-bench [--quick] [--keep] [--aggregator PATH] [--fleetsim PATH]
//   (paths default to .build/release/…; BENCH_VERBOSE=1 prints progress)
import Foundation
import Logging
import RegwatchAggregator
import RegwatchBenchSupport
import RegwatchShared
import RegwatchTestSupport
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? { benchOption(name, in: arguments) }
let quick = arguments.contains("--quick")
let aggregatorPath = option("--aggregator") ?? ".build/release/regwatch-aggregator"
let fleetsimPath = option("--fleetsim") ?? ".build/release/regwatch-fleetsim"
let verbose = ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil
let logger = Logger(label: "ha-bench", factory: { _ in SwiftLogNoOpLogHandler() })

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("regwatch-ha-bench: \(message)\n".utf8))
    exit(1)
}
func progress(_ message: String) { if verbose { FileHandle.standardError.write(Data("… \(message)\n".utf8)) } }
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }

func cpuSeconds(_ pid: Int32) -> Double { processCPUSeconds(pid, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK)))) }

/// CPU seconds of every PostgreSQL process of the cluster in `dir` (the postmaster and its backends).
func postgresCPU(_ server: PostgresServer) -> Double {
    guard let postmaster = server.pid, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
    var total = 0.0
    for e in entries {
        guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, pid == postmaster || Int32(fields[1]) == postmaster else { continue }
        total += cpuSeconds(pid)
    }
    return total
}

// MARK: Store level: the same batches into SQLite, into PostgreSQL, and COPY of the rows PostgreSQL got

let hosts = quick ? 2_000 : 10_000
let rounds = quick ? 3 : 5
let groupReports = IngestService.CommitPolicy().groupReports
let base = Date(timeIntervalSince1970: 1_764_000_000)
/// Every host reports once per round (a newer cycle each time), in batches of the committer's group size.
let batches: [IngestBatch] = (0..<rounds).flatMap { round in
    stride(from: 0, to: hosts, by: groupReports).map { start in
        var batch = IngestBatch()
        for i in start..<min(hosts, start + groupReports) {
            let report = makeSampleReport(host: "host-\(i)", index: i, cycle: base.addingTimeInterval(Double(round * 30)))
            batch.append(report: report, hostID: "host-\(i)", seq: UInt64(round + 1), receivedAt: base.addingTimeInterval(Double(round * 30) + 1))
        }
        return batch
    }
}
let reportCount = hosts * rounds

func timeCommits(_ store: any FleetStoring) throws -> Double {
    let t0 = now()
    for batch in batches { _ = try store.commit(batch) }
    return Double(reportCount) / (now() - t0)
}

let work = "/tmp/rw-ha-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
chmod(work, 0o777)
defer { if !arguments.contains("--keep") { try? FileManager.default.removeItem(atPath: work) } }

progress("PostgreSQL cluster")
let server = try PostgresServer("bench")
progress("SQLite: \(reportCount) reports in \(batches.count) batches")
let sqlite = try FleetStore(path: "\(work)/bench.db")
let sqliteRate = try timeCommits(sqlite)
sqlite.close()

progress("PostgreSQL: the same batches")
let location = try PostgresLocation.parse(server.url())
let postgres = try PostgresFleetStore(location: location, password: server.password, logger: logger)
let walBefore = try server.psql("SELECT pg_current_wal_lsn()")
let postgresRate = try timeCommits(postgres)
postgres.close()
// Write-ahead log per report: what the server writes, and ships to its replicas, for each one.
let walPerReport = (Double(try server.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '\(walBefore)')")) ?? 0) / Double(reportCount)

// The rows the store wrote, per table, then loaded again with COPY into empty tables of the same shape
// (indexes and keys included), in one transaction: the database's floor for these rows.
let allTables = try server.psql("""
    SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables
    WHERE schemaname = 'public' AND tablename NOT IN ('regwatch_migrations', 'store_meta', 'leader_term')
    """, database: "regwatch").split(separator: " ").map(String.init)
var tables: [String] = []
var rowsPerReport: [(String, Double)] = []
var copyScript = ""
for t in allTables {
    let rows = Double(try server.psql("SELECT count(*) FROM \(t)", database: "regwatch")) ?? 0
    guard rows > 0 else { continue }
    tables.append(t)
    rowsPerReport.append((t, rows / Double(reportCount)))
    try server.psql("CREATE TABLE floor_\(t) (LIKE \(t) INCLUDING ALL)", database: "regwatch")
    try server.psql("COPY \(t) TO '\(work)/\(t).copy'", database: "regwatch")
    copyScript += "COPY floor_\(t) FROM '\(work)/\(t).copy';\n"
}
progress("COPY of \(tables.joined(separator: ", "))")
let copyStart = now()
try server.psql("BEGIN;\n\(copyScript)COMMIT;", database: "regwatch")
let copyRate = Double(reportCount) / (now() - copyStart)

// Bytes on disk per report (tables, indexes, TOAST) once the latest state is all that is kept of older
// reports: every host row is rewritten in place, history rows (probe_report, probe_sample) accumulate.
try server.psql("VACUUM ANALYZE", database: "regwatch")
var bytesPerReport: [(String, Double)] = []
for t in tables {
    let bytes = Double(try server.psql("SELECT pg_total_relation_size('\(t)')", database: "regwatch")) ?? 0
    bytesPerReport.append((t, bytes / Double(reportCount)))
}

// MARK: Process level: one aggregator against two, on one database, loaded by fleetsim

struct Round {
    var aggregators: Int
    var ingestedPerSecond: Double
    var offeredPerSecond: Double
    var aggregatorCPU: Double
    var postgresCPU: Double
    var fleetsimCPU: Double
}

let agentsTotal = quick ? 600 : 2_000
let interval = quick ? "200ms" : "250ms"
let intervalSeconds = quick ? 0.2 : 0.25
let measureSeconds = quick ? 8.0 : 20.0

func freePort() -> Int { RegistryHarness.freePort() }

func runRound(aggregators: Int) throws -> Round {
    let dir = "\(work)/round-\(aggregators)"
    try FileManager.default.createDirectory(atPath: "\(dir)/keys", withIntermediateDirectories: true)
    let db = try server.createDatabase("round\(aggregators)")
    var ports: [(zmq: Int, http: Int)] = []
    for i in 0..<aggregators {
        let p = (freePort(), freePort())
        ports.append(p)
        try """
        listen: {zmq: "tcp://127.0.0.1:\(p.0)", http: "127.0.0.1:\(p.1)"}
        database: \(db)
        databasePasswordFile: \(server.passwordFile)
        keys: {dir: \(dir)/keys}
        enrollment: {mode: token, joinsPerSecond: 2000}
        """.write(toFile: "\(dir)/aggregator-\(i).yaml", atomically: true, encoding: .utf8)
    }
    func cli(_ args: [String]) throws -> String {
        let (status, out) = try RegistryHarness.spawnAndWait(aggregatorPath, args, stderrPath: "\(dir)/cli.err")
        guard status == 0 else { fail("\(aggregatorPath) \(args.joined(separator: " ")): \((try? String(contentsOfFile: "\(dir)/cli.err", encoding: .utf8)) ?? "")") }
        return out
    }
    _ = try cli(["keys", "generate", "--config", "\(dir)/aggregator-0.yaml"])
    try cli(["tokens", "create", "--name", "bench", "--ttl", "0", "--config", "\(dir)/aggregator-0.yaml"]).write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
    var processes: [Process] = []
    defer { for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    for i in 0..<aggregators {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: aggregatorPath)
        p.arguments = ["serve", "--config", "\(dir)/aggregator-\(i).yaml"]
        FileManager.default.createFile(atPath: "\(dir)/aggregator-\(i).log", contents: nil)
        p.standardError = FileHandle(forWritingAtPath: "\(dir)/aggregator-\(i).log")
        try p.run()
        processes.append(p)
        guard RegistryHarness.waitForPort(ports[i].http) else { fail("aggregator \(i) did not serve") }
    }
    func ingested() -> Double {
        ports.reduce(0.0) { sum, p in
            let (status, text) = (try? RegistryHarness.spawnAndWait("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(p.http)/metrics"])) ?? (1, "")
            guard status == 0 else { return sum }
            let line = text.split(separator: "\n").first { $0.hasPrefix("regwatch_reports_ingested_total ") }
            return sum + (line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0)
        }
    }
    // One fleetsim per aggregator, each with its share of the agents, for long enough to measure.
    var sims: [Process] = []
    for i in 0..<aggregators {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: fleetsimPath)
        p.arguments = [
            "--endpoint", "tcp://127.0.0.1:\(ports[i].zmq)", "--server-key", "\(dir)/keys/server.pub", "--signing-key", "\(dir)/keys/signing.pub",
            "--token-file", "\(dir)/token", "--state-dir", "\(dir)/sim-\(i)", "--host-prefix", "a\(i)",
            "--agents", "\(agentsTotal / aggregators)", "--scenario", "steady", "--interval", interval,
            "--duration", "\(Int(measureSeconds) + 30)s", "--threads", "1",
        ]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        FileManager.default.createFile(atPath: "\(dir)/fleetsim-\(i).log", contents: nil)
        p.standardError = FileHandle(forWritingAtPath: "\(dir)/fleetsim-\(i).log")
        try p.run()
        sims.append(p)
    }
    defer { for p in sims where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    // Measured once every agent reports: the ingest rate has reached the offered rate or its ceiling.
    let offered = Double(agentsTotal) / intervalSeconds
    let ready = now() + 120
    var last = ingested(), lastAt = now()
    while now() < ready {
        Thread.sleep(forTimeInterval: 2)
        let n = ingested(), t = now()
        let rate = (n - last) / (t - lastAt)
        progress("\(aggregators) aggregator(s): \(fmt(rate)) reports/s")
        if rate > offered * 0.5 || n > Double(agentsTotal) * 5 { break }
        last = n
        lastAt = t
    }
    let cpu0 = (agg: processes.map { cpuSeconds($0.processIdentifier) }.reduce(0, +), pg: postgresCPU(server),
                sim: sims.map { cpuSeconds($0.processIdentifier) }.reduce(0, +))
    let n0 = ingested(), t0 = now()
    Thread.sleep(forTimeInterval: measureSeconds)
    let n1 = ingested(), t1 = now()
    let wall = t1 - t0
    let round = Round(
        aggregators: aggregators, ingestedPerSecond: (n1 - n0) / wall, offeredPerSecond: offered,
        aggregatorCPU: (processes.map { cpuSeconds($0.processIdentifier) }.reduce(0, +) - cpu0.agg) / wall,
        postgresCPU: (postgresCPU(server) - cpu0.pg) / wall,
        fleetsimCPU: (sims.map { cpuSeconds($0.processIdentifier) }.reduce(0, +) - cpu0.sim) / wall)
    for p in sims { kill(p.processIdentifier, SIGKILL) }
    for p in processes { p.terminate() }
    for p in processes { p.waitUntilExit() }
    return round
}

progress("one aggregator")
let one = try runRound(aggregators: 1)
progress("two aggregators")
let two = try runRound(aggregators: 2)

// MARK: Output

print("regwatch-ha-bench: \(reportCount) reports (\(hosts) hosts × \(rounds) rounds, 5 probes each) in batches of \(groupReports)")
print("  store commit, SQLite            \(fmt(sqliteRate)) reports/s")
print("  store commit, PostgreSQL        \(fmt(postgresRate)) reports/s   (\(fmt(postgresRate / sqliteRate, 2)) × SQLite)")
print("  COPY of the same rows (floor)   \(fmt(copyRate)) reports/s   (store at \(fmt(postgresRate / copyRate, 2)) × COPY)")
print("  rows per report: " + rowsPerReport.map { "\($0.0) \(fmt($0.1, 2))" }.joined(separator: ", "))
print("  bytes per report on disk (after \(rounds) reports per host): " + bytesPerReport.map { "\($0.0) \(fmt($0.1))" }.joined(separator: ", ")
      + "; total \(fmt(bytesPerReport.map(\.1).reduce(0, +)))")
print("  write-ahead log per report: \(fmt(walPerReport)) bytes")
let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
for r in [one, two] {
    let busy = r.aggregatorCPU + r.postgresCPU + r.fleetsimCPU
    print("  \(r.aggregators) aggregator(s) on PostgreSQL, \(agentsTotal) emulated agents offering \(fmt(r.offeredPerSecond)) reports/s: stored \(fmt(r.ingestedPerSecond)) reports/s; CPU: aggregators \(fmt(r.aggregatorCPU * 100)) %, PostgreSQL \(fmt(r.postgresCPU * 100)) %, fleetsim \(fmt(r.fleetsimCPU * 100)) % of a core; machine \(fmt(busy / cores * 100)) % busy (\(Int(cores)) cores); \(fmt(r.ingestedPerSecond / max(r.aggregatorCPU, 0.001))) reports per aggregator CPU-second")
}
print("  two aggregators against one: \(fmt(two.ingestedPerSecond / one.ingestedPerSecond, 2)) × (on a machine whose cores are all busy, a second aggregator adds no capacity; it adds a place to fail over to)")
