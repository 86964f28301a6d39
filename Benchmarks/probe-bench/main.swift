// regwatch-probe-bench: the probe engine against prometheus-blackbox-exporter, same loopback targets,
// same run: CPU per endpoint probe, wall time per cycle, peak/steady RSS; and a 20-endpoint cycle with
// one endpoint that answers after 2 s.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RegwatchTestSupport

func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }

func procCPU(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (Double(fields[11]) ?? 0) / ticks + (Double(fields[12]) ?? 0) / ticks // utime, stime
}

func procRSSKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let agent = "\(binDir)/regwatch-agent"
guard FileManager.default.isExecutableFile(atPath: agent) else {
    print("build regwatch-agent in the same configuration first (make bench does)"); exit(2)
}
let cycles = CommandLine.arguments.contains("--quick") ? 20 : 100
let endpoints = 10
let h = RegistryHarness("bench")
let port = try h.startRegistry(name: "r")
let urls = (0..<endpoints).map { _ in "http://127.0.0.1:\(port)" }

// regwatch: `check --repeat N` over 10 endpoints (/v2/ only, like blackbox's http module).
let config = "\(h.dir)/agent.yaml"
try """
host: {id: bench}
aggregator: {insecure: true}
registries:
  - name: docker.io
    upstream: http://127.0.0.1:\(port)
    rateLimit: false
    mirrors: [\(urls.dropFirst().map { "{url: \"\($0)\", insecure: true}" }.joined(separator: ", "))]
""".write(toFile: config, atomically: true, encoding: .utf8)
_ = try RegistryHarness.spawnAndMeasure(agent, ["check", "--config", config, "--repeat", "3"]) // warm caches
let rwStart = Date()
let (rwStatus, _, rwUsage) = try RegistryHarness.spawnAndMeasure(agent, ["check", "--config", config, "--repeat", "\(cycles)"])
let rwWall = Date().timeIntervalSince(rwStart)
let rwCPU = seconds(rwUsage.ru_utime) + seconds(rwUsage.ru_stime)
let rwOneShot = try RegistryHarness.spawnAndMeasure(agent, ["check", "--config", config, "--repeat", "1"]).2
guard rwStatus == 0 else { print("regwatch-agent check failed (exit \(rwStatus))"); exit(1) }

// blackbox_exporter: the same 10 URLs per cycle, probed concurrently, `cycles` times.
let bbPort = RegistryHarness.freePort()
try """
modules:
  registry:
    prober: http
    timeout: 5s
    http: {valid_status_codes: [200, 401], preferred_ip_protocol: ip4}
""".write(toFile: "\(h.dir)/blackbox.yml", atomically: true, encoding: .utf8)
let bb = try h.start("/usr/bin/prometheus-blackbox-exporter", ["--config.file", "\(h.dir)/blackbox.yml", "--web.listen-address", "127.0.0.1:\(bbPort)"])
guard RegistryHarness.waitForPort(bbPort) else { print("blackbox exporter did not start"); exit(1) }
func blackboxCycle() async {
    await withTaskGroup(of: Void.self) { group in
        for url in urls {
            group.addTask {
                let probe = URL(string: "http://127.0.0.1:\(bbPort)/probe?module=registry&target=\(url)/v2/")!
                _ = try? await URLSession.shared.data(from: probe)
            }
        }
    }
}
for _ in 0..<3 { await blackboxCycle() }
let bbCPUBefore = procCPU(bb.processIdentifier)
let bbStart = Date()
for _ in 0..<cycles { await blackboxCycle() }
let bbWall = Date().timeIntervalSince(bbStart)
let bbCPU = procCPU(bb.processIdentifier) - bbCPUBefore
let bbRSS = procRSSKiB(bb.processIdentifier)

// 20 endpoints, one answering after 2 s: the cycle should take about as long as the slow one.
let slow = try h.startFaultProxy(upstream: port, mode: "slow:2")
let config20 = "\(h.dir)/agent20.yaml"
try """
host: {id: bench}
aggregator: {insecure: true}
registries:
  - name: docker.io
    upstream: http://127.0.0.1:\(slow)
    rateLimit: false
    mirrors: [\((0..<19).map { _ in "{url: \"http://127.0.0.1:\(port)\", insecure: true}" }.joined(separator: ", "))]
""".write(toFile: config20, atomically: true, encoding: .utf8)
let slowStart = Date()
_ = try RegistryHarness.spawnAndMeasure(agent, ["check", "--config", config20])
let slowWall = Date().timeIntervalSince(slowStart)
h.stopAll()

let probes = Double(cycles * endpoints)
print("regwatch-probe-bench: \(endpoints) endpoints x \(cycles) cycles against one CNCF registry on loopback")
print("")
func row(_ label: String, _ values: [String]) {
    print(label.padding(toLength: 40, withPad: " ", startingAt: 0) + values.map { String(repeating: " ", count: max(0, 15 - $0.count)) + $0 }.joined())
}
row("", ["regwatch-agent", "blackbox", "ratio"])
row("CPU per endpoint probe (µs)", [String(format: "%.1f", rwCPU / probes * 1e6), String(format: "%.1f", bbCPU / probes * 1e6), String(format: "%.2f", rwCPU / bbCPU)])
row("wall per cycle (ms)", [String(format: "%.2f", rwWall / Double(cycles) * 1000), String(format: "%.2f", bbWall / Double(cycles) * 1000), String(format: "%.2f", rwWall / bbWall)])
row("RSS MiB (agent: peak, one cycle)", [String(format: "%.1f", Double(rwOneShot.ru_maxrss) / 1024), String(format: "%.1f", Double(bbRSS) / 1024), String(format: "%.2f", Double(rwOneShot.ru_maxrss) / Double(bbRSS))])
row("RSS MiB (agent: peak, \(cycles) cycles)", [String(format: "%.1f", Double(rwUsage.ru_maxrss) / 1024)])
print(String(format: "20 endpoints, one slow (2 s): cycle %.2f s = %.2fx the slow endpoint (goal <= 1.10)", slowWall, slowWall / 2.0))
print("goals: CPU per probe <= 0.50x blackbox, RSS <= 12 MiB")
