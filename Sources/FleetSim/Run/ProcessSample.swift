import FoundationEssentials
import Glibc

/// The aggregator's CPU time and memory, read from `/proc/PID/stat` and `/proc/PID/status`.
public struct ProcessSample: Sendable, Equatable {
    public var pid: Int32
    /// User plus system time, in seconds (clock ticks: 10 ms resolution).
    public var cpuSeconds: Double
    public var rssBytes: Int
    /// `VmHWM`: the peak resident size since the process started.
    public var peakRSSBytes: Int

    /// Nil when the process is gone or its files cannot be read.
    public static func read(pid: Int32) -> ProcessSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        func kib(_ key: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        guard let rss = kib("VmRSS"), let hwm = kib("VmHWM") else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ProcessSample(pid: pid, cpuSeconds: (utime + stime) / ticks, rssBytes: rss * 1024, peakRSSBytes: hwm * 1024)
    }

    /// The PID written in `file`; nil when it holds none.
    public static func pid(inFile file: String) -> Int32? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        return Int32(text.trimmed())
    }
}
