import FoundationEssentials
import Glibc
import RegwatchShared

/// `regwatch-agent restore`: every runtime file regwatch changed goes back to its original content (or
/// away, if regwatch created it), then the runtimes that need it are reloaded. Run at uninstall, with the
/// agent stopped, so nothing writes the files again.
public struct RuntimeRestorer: Sendable {
    public let config: AgentConfig
    let reloader: any RuntimeReloading

    public init(config: AgentConfig, reloader: any RuntimeReloading) {
        self.config = config
        self.reloader = reloader
    }

    /// One line per file and reload; `failed` when anything could not be put back (those originals are kept).
    public func restore() -> (lines: [String], failed: Bool) {
        let root = config.hostRoot
        let originals = OriginalFiles(stateDir: config.stateDir, root: root)
        let entries = originals.list()
        guard !entries.isEmpty else { return (["nothing to restore: regwatch changed no runtime file here"], false) }
        var lines: [String] = []
        var failed = false
        var touched: Set<RuntimeKind> = []
        for e in entries {
            let real = root.resolve(e.hostPath)
            if let content = e.content {
                var st = stat()
                let mode = stat(real, &st) == 0 ? st.st_mode & 0o7777 : 0o644
                do throws(AtomicFile.WriteError) {
                    try AtomicFile.write(content, to: real, mode: mode)
                    lines.append("restored \(e.hostPath) (\(e.runtime.rawValue))")
                } catch {
                    lines.append("cannot restore \(e.hostPath): \(root.shown(error.reason))")
                    failed = true
                    continue
                }
            } else {
                guard unlink(real) == 0 || errno == ENOENT else {
                    lines.append("cannot remove \(e.hostPath): \(String(cString: strerror(errno)))")
                    failed = true
                    continue
                }
                // A per-registry directory regwatch made for the file goes too, when nothing else is in it.
                if e.runtime == .containerd { rmdir(String(real[..<(real.lastIndex(of: "/") ?? real.endIndex)])) }
                lines.append("removed \(e.hostPath) (\(e.runtime.rawValue); it did not exist before regwatch)")
            }
            unlink(real + ".regwatch-backup")
            originals.forget(e)
            touched.insert(e.runtime)
        }
        for runtime in touched.sorted(by: { $0.rawValue < $1.rawValue }) {
            let mode: AgentConfig.Docker.Reload = switch runtime {
            case .docker: config.runtime.docker?.reload ?? .none
            case .crio: config.runtime.crio?.reload ?? .none
            case .containerd: .none // containerd reads hosts.toml on every pull; k3s reads registries.yaml at start
            }
            guard mode != .none else { continue }
            do {
                try reloader.reload(runtime, mode: mode)
                lines.append("reloaded \(runtime.rawValue) (\(mode.rawValue))")
            } catch {
                lines.append("\(runtime.rawValue) reload failed: \(root.shown(error.description)); reload it by hand")
                failed = true
            }
        }
        return (lines, failed)
    }
}
