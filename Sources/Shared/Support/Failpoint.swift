import FoundationEssentials
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Named crash points for crash-safety tests: `REGWATCH_FAILPOINT=name` (or `name@N` for its Nth hit)
/// in the environment makes the process kill itself with SIGKILL when execution reaches
/// `Failpoint.hit(name)`, exactly as a power cut or an OOM kill would at that step. Read once at start;
/// with the variable unset a hit is one check of an empty dictionary.
public enum Failpoint {
    /// Armed names and the hit that kills (1 = the first).
    static let armed: [String: Int] = {
        guard let value = ProcessInfo.processInfo.environment["REGWATCH_FAILPOINT"], !value.isEmpty else { return [:] }
        var armed: [String: Int] = [:]
        for item in value.split(separator: ",") {
            let parts = item.split(separator: "@", maxSplits: 1)
            armed[String(parts[0])] = parts.count == 2 ? Int(parts[1]) ?? 1 : 1
        }
        return armed
    }()

    static let hits = Mutex<[String: Int]>([:])

    /// Dies here if `name` is armed for this hit.
    @inline(__always)
    public static func hit(_ name: StaticString) {
        guard !armed.isEmpty else { return }
        let key = "\(name)"
        guard let at = armed[key] else { return }
        let n = hits.withLock { h in
            h[key, default: 0] += 1
            return h[key]!
        }
        if n == at { kill(getpid(), SIGKILL) }
    }
}
