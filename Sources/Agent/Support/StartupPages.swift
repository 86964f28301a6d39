import FoundationEssentials
import Glibc

/// Drops the agent's executable code from its page tables once start-up is over, so what stays resident
/// is the code the steady loop runs. Start-up (config, discovery, keys, the first cycles) touches code
/// nothing touches again, and every first touch also maps up to 64 KiB of neighbouring pages (the kernel's
/// fault-around), all counted in RSS, the figure a DaemonSet's memory limit is set from.
///
/// Only the executable's read-only, executable mappings: their pages are never written, so the kernel
/// maps them again from the file on the next touch. Writable or relocated mappings would lose their
/// contents and are left alone.
enum StartupPages {
    /// Returns the bytes unmapped (what RSS falls by at once), or nil when /proc is unreadable.
    @discardableResult
    static func release() -> Int? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
              let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
        var released = 0
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "r-xp", fields[5...].joined(separator: " ") == exe else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), end > start,
                  let address = UnsafeMutableRawPointer(bitPattern: start) else { continue }
            if madvise(address, Int(end - start), MADV_DONTNEED) == 0 { released += Int(end - start) }
        }
        return released
    }
}
