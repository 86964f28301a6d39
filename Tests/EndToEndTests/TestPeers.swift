import Foundation
import RegwatchShared
import RegwatchTestSupport
import Testing

/// A ZAP policy that admits exactly one agent key, bound to one host id: the aggregator's enrollment
/// check reduced to a test's single agent.
struct SingleKeyAuthenticator: ZAPAuthenticator {
    let key: CurvePublicKey
    let hostID: String
    func authenticate(_ request: ZAPRequest) -> ZAPDecision { request.clientKey == key ? .allow(hostID: hostID) : .deny(reason: "not enrolled") }
}

/// A real dockerd in a fresh network namespace that has only `lo`, its files under `h.dir`. With
/// `resolv`, that file is bind-mounted as its `/etc/resolv.conf` so no lookup reaches the machine's resolver.
struct DockerNamespace {
    let name = "rw-d\(UInt32.random(in: 0...UInt32.max) % 1_000_000)"
    let h: RegistryHarness
    let socket: String
    /// dockerd's config file.
    let daemonJSON: String

    init(_ h: RegistryHarness, socket: String? = nil, daemonJSON: String? = nil) throws {
        self.h = h
        self.socket = socket ?? "\(h.dir)/docker.sock"
        self.daemonJSON = daemonJSON ?? "\(h.dir)/daemon.json"
        try h.run("/usr/sbin/ip", ["netns", "add", name])
        try h.run("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
    }

    /// Starts dockerd with ``daemonJSON`` already written; stderr goes to `h.dir/dockerd.log`.
    func startDockerd(resolv: String? = nil) throws {
        let d = h.dir
        let dockerd = ["/usr/sbin/dockerd", "--config-file", daemonJSON, "--data-root", "\(d)/data", "--exec-root", "\(d)/exec",
                       "--pidfile", "\(d)/dockerd.pid", "--host", "unix://\(socket)"]
        let enter = ["/usr/bin/nsenter", "--net=/run/netns/\(name)"] + dockerd
        if let resolv {
            let inner = "mount --bind \(resolv) /etc/resolv.conf && exec " + enter.map { "'\($0)'" }.joined(separator: " ")
            try h.start("/usr/bin/unshare", ["-m", "/bin/sh", "-c", inner], stderrPath: "\(d)/dockerd.log")
        } else {
            try h.start(enter[0], Array(enter.dropFirst()), stderrPath: "\(d)/dockerd.log")
        }
        var up = false
        for _ in 0..<150 where !up {
            up = (try? h.run("/usr/bin/curl", ["-sf", "--unix-socket", socket, "http://localhost/_ping"])) == "OK"
            if !up { usleep(200_000) }
        }
        try #require(up, "dockerd did not come up")
    }

    /// Kills everything started under `h.dir` and removes the namespace.
    func tearDown() {
        _ = try? h.run("/usr/bin/pkill", ["-9", "-f", h.dir])
        h.stopAll()
        h.unmountAll()
        _ = try? h.run("/usr/sbin/ip", ["netns", "del", name])
    }
}
