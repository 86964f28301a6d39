/// The value after `--name` on a benchmark's command line, nil when it is not there.
public func benchOption(_ name: String, in arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`; 0 once it is gone.
public func processCPUSeconds(_ pid: Int32, ticksPerSecond: Double) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / ticksPerSecond
}
