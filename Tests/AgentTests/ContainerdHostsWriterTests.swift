import Foundation
@testable import RegwatchAgent
import Testing

@Suite("containerd hosts.toml writer")
struct ContainerdHostsWriterTests {
    @Test("hosts in order, resolve only for trusted mirrors, never skip_verify, and it reads back")
    func renders() throws {
        let text = try ContainerdHostsWriter.renderVerified(
            registry: "docker.io", server: "https://registry-1.docker.io",
            mirrors: [.init(url: "https://mirror-b:5000", trusted: false, ca: "/etc/regwatch/b.crt"), .init(url: "https://mirror-a:5000", trusted: true)],
            path: "certs.d/docker.io/hosts.toml")
        let parsed = try ContainerdHosts.parse(text, registry: "docker.io", path: "x")
        #expect(parsed.hosts.map(\.url) == ["https://mirror-b:5000", "https://mirror-a:5000"])
        #expect(parsed.hosts.map(\.capabilities) == [["pull"], ["pull", "resolve"]])
        #expect(parsed.hosts[0].ca == ["/etc/regwatch/b.crt"])
        #expect(parsed.server == "https://registry-1.docker.io")
        #expect(!text.contains("skip_verify"))
    }

    /// Found by fuzzing (FuzzContainerdHosts): DEL was written raw, and the reader (as TOML) refuses it.
    @Test("control characters in a host or ca are escaped and read back")
    func controlCharacters() throws {
        let url = "https://m\u{7F}\u{1}:5000"
        let text = try ContainerdHostsWriter.renderVerified(
            registry: "docker.io", server: "https://s\u{7F}", mirrors: [.init(url: url, trusted: true, ca: "/ca\u{7F}")], path: "x")
        #expect(text.contains("\\u007f") && !text.unicodeScalars.contains("\u{7F}"))
        let parsed = try ContainerdHosts.parse(text, registry: "docker.io", path: "x")
        #expect(parsed.hosts.map(\.url) == [url])
        #expect(parsed.hosts.first?.ca == ["/ca\u{7F}"])
    }

    @Test("no mirrors: only the server, pulls go upstream")
    func empty() throws {
        let text = try ContainerdHostsWriter.renderVerified(registry: "docker.io", server: "https://registry-1.docker.io", mirrors: [], path: "x")
        #expect(try ContainerdHosts.parse(text, registry: "docker.io", path: "x").hosts.isEmpty)
    }

    @Test("registry names that would leave certsDir have no directory")
    func directories() {
        #expect(ContainerdHostsWriter.directory(certsDir: "/etc/containerd/certs.d", registry: "registry.example:5000") == "/etc/containerd/certs.d/registry.example:5000")
        for bad in ["..", "../etc", "a/b", ".hidden", "", "x\\y"] {
            #expect(ContainerdHostsWriter.directory(certsDir: "/etc/containerd/certs.d", registry: bad) == nil, "\(bad)")
        }
    }
}
