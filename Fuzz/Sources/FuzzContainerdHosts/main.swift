import FoundationEssentials
import FuzzSupport
import RegwatchAgent

runFuzzer(fuzz)

/// containerd's `certs.d/<registry>/hosts.toml` (`ContainerdHosts.parse`, the TOML reader under it).
/// Checked: the hosts a file names can be written back by `ContainerdHostsWriter` for failover and read
/// again in the same order with the same capabilities (`renderVerified` throws otherwise), whatever
/// characters the host keys and the server hold.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    guard let hosts = try? ContainerdHosts.parse(text, registry: "docker.io", path: "hosts.toml") else { return 0 }
    let mirrors = hosts.hosts.map { ContainerdHostsWriter.Mirror(url: $0.url, trusted: $0.capabilities.contains("resolve"), ca: $0.ca.first) }
    let server = hosts.server ?? "https://registry-1.docker.io"
    do {
        let written = try ContainerdHostsWriter.renderVerified(registry: "docker.io", server: server, mirrors: mirrors, path: "hosts.toml")
        let back = try ContainerdHosts.parse(written, registry: "docker.io", path: "hosts.toml")
        fuzzCheck(back.hosts.map(\.ca) == mirrors.map { $0.ca.map { [$0] } ?? [] }, "ca paths changed in the rewrite")
    } catch {
        fuzzCheck(false, "hosts read from a valid file cannot be written back: \(error)")
    }
    return 0
}
