import Foundation
import RegwatchTestSupport
import Testing

/// `check` and `diagnose` on a host with no regwatch config: everything comes from the runtimes' own
/// files, read from the real paths (bind-mounted in a mount namespace) or under `--host-root`.
@Suite("zero-config check and diagnose", .serialized, .ownThread, .tags(.root))
struct ZeroConfigTests {
    let image = "docker.io/library/alpine:latest"

    /// What both views of the same host must show: the dead mirror named, the fall-through, exit 1,
    /// the files each fact came from, the helpers' fates, and no secret anywhere.
    func expectDiagnosis(_ lab: ZeroConfigLab, _ r: ZeroConfigLab.Run, report: String) throws {
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let verdict = try #require(r.json["verdict"] as? [String: Any], "\(r.stdout)\(r.stderr)")
        #expect(verdict["class"] as? String == "tcp_refused")
        let summary = verdict["summary"] as? String ?? ""
        #expect(summary.contains("http://127.0.0.1:\(lab.dead)"), "\(summary)")
        #expect(summary.contains("pulls fall through to http://127.0.0.1:\(lab.alive)"), "\(summary)")
        let steps = try #require(r.json["steps"] as? [[String: Any]])
        #expect(steps.map { $0["endpoint"] as? String } == ["http://127.0.0.1:\(lab.dead)", "http://127.0.0.1:\(lab.alive)", "https://registry-1.docker.io"])
        #expect(steps.map { $0["class"] as? String } == ["tcp_refused", "ok", "dns_failure"])

        let mirrors = try #require(r.finding("mirrors", "docker.io"), "\(r.findings)")
        #expect(mirrors["source"] as? String == "/etc/docker/daemon.json")
        #expect((mirrors["detail"] as? String)?.contains("http://127.0.0.1:\(lab.dead), http://127.0.0.1:\(lab.alive)") == true)
        #expect(r.finding("credentials", "docker.io")?["detail"] as? String == "user hubuser")
        #expect(r.finding("credentials", "docker.io")?["source"] as? String == "/root/.docker/config.json")
        #expect(r.finding("credentials", "helped.registry.test")?["detail"] as? String == "user helperuser, from docker-credential-good", "\(r.findings)")
        let hung = try #require(r.finding("problem", "slow.registry.test"), "\(r.findings)")
        #expect((hung["detail"] as? String)?.contains("docker-credential-hang did not answer within 2 s") == true, "\(hung)")
        #expect((r.finding("problem", "gone.registry.test")?["detail"] as? String)?.contains("docker-credential-not-installed is not installed") == true)
        #expect(ZeroConfigLab.running("sleep 61.5").isEmpty, "the hanging helper's process group was not killed")

        let text = try String(contentsOfFile: report, encoding: .utf8)
        #expect(text.contains("# regwatch diagnosis: `docker.io/library/alpine:latest`"))
        #expect(text.contains("**tcp_refused**"))
        #expect(text.contains("**Next step:** nothing listens on 127.0.0.1:\(lab.dead)"))
        #expect(text.contains("`/etc/docker/daemon.json`"))
        #expect(text.contains("| 1 | mirror | `http://127.0.0.1:\(lab.dead)` | ✔"), "\(text)")
        for secret in ZeroConfigLab.secrets + [Data("hubuser:hub-secret-771".utf8).base64EncodedString()] {
            #expect(!text.contains(secret), "report leaks \(secret)")
            #expect(!r.stdout.contains(secret), "stdout leaks \(secret)")
            #expect(!r.stderr.contains(secret), "log leaks \(secret)")
        }
    }

    /// The lab's `/etc/containers`: a registry only the real `/etc` has, to prove what a host root does not read.
    func realOnlyContainers(_ lab: ZeroConfigLab) throws -> String {
        let d = "\(lab.dir)/real-etc-containers"
        try lab.write("\(d)/registries.conf", "unqualified-search-registries = [\"only-real-host.test\"]\n")
        return d
    }

    @Test("with the host's own files bind-mounted: diagnose names the dead mirror and the fall-through; check lists both mirrors and the upstream")
    func bindMountedHost() throws {
        let lab = try ZeroConfigLab()
        let files = "\(lab.dir)/host"
        try lab.writeDockerFiles(under: files)
        let mounts = [("\(files)/etc/docker", "/etc/docker"), ("\(files)/root/.docker", "/root/.docker"), (try realOnlyContainers(lab), "/etc/containers")]
        let report = "\(lab.dir)/report.md"
        let r = try lab.agent(["diagnose", image, "--json", "--helper-timeout", "2s", "--report", report], mounts: mounts)
        try expectDiagnosis(lab, r, report: report)
        #expect(r.finding("registry", "search")?["source"] as? String == "/etc/containers/registries.conf", "the real /etc is read: \(r.findings)")

        let c = try lab.agent(["check", "--json", "--helper-timeout", "2s"], mounts: mounts)
        #expect(c.status == 1)
        let endpoints = (c.json["endpoints"] as? [[String: Any]] ?? []).filter { $0["registry"] as? String == "docker.io" }
        #expect(endpoints.map { [$0["endpoint"] as? String, $0["role"] as? String, $0["class"] as? String] } == [
            ["https://registry-1.docker.io", "upstream", "dns_failure"],
            ["http://127.0.0.1:\(lab.dead)", "mirror", "tcp_refused"],
            ["http://127.0.0.1:\(lab.alive)", "mirror", "ok"],
        ], "\(c.stdout)")
        let docker = (c.json["runtime"] as? [String: Any])?["docker"] as? [String: Any]
        #expect((docker?["mirrors"] as? [String: [String]])?["docker.io"] == ["http://127.0.0.1:\(lab.dead)", "http://127.0.0.1:\(lab.alive)"])

        let table = try lab.agent(["diagnose", image, "--helper-timeout", "2s"], mounts: mounts)
        #expect(table.stdout.hasPrefix("no config file: discovered on this host\n"), "\(table.stdout)")
        #expect(table.stdout.contains("verdict: tcp_refused"))
    }

    @Test("the same files under --host-root: the same results, host paths in every message, nothing read outside the prefix")
    func hostRoot() throws {
        let lab = try ZeroConfigLab()
        let root = "\(lab.dir)/hostroot"
        try lab.writeDockerFiles(under: root)
        try lab.write("\(root)/usr/local/bin/docker-credential-good", try String(contentsOfFile: "\(lab.dir)/bin/docker-credential-good", encoding: .utf8), mode: 0o755)
        try lab.write("\(root)/usr/local/bin/docker-credential-hang", try String(contentsOfFile: "\(lab.dir)/bin/docker-credential-hang", encoding: .utf8), mode: 0o755)
        // The real /etc/containers names a registry; the host root has no /etc/containers at all.
        let mounts = [(try realOnlyContainers(lab), "/etc/containers")]
        let report = "\(lab.dir)/report.md"
        let r = try lab.agent(["diagnose", image, "--json", "--host-root", root, "--helper-timeout", "2s", "--report", report], mounts: mounts)
        try expectDiagnosis(lab, r, report: report)
        #expect((r.json["discovery"] as? [String: Any])?["root"] as? String == root)
        #expect(!r.stdout.contains("only-real-host.test"), "a file outside the host root was read")
        #expect(!r.findings.contains { ($0["source"] as? String ?? "").hasPrefix(root) }, "sources must be host paths: \(r.findings)")

        let c = try lab.agent(["check", "--json", "--host-root", root, "--helper-timeout", "2s"], mounts: mounts)
        #expect(c.status == 1)
        #expect(!c.stdout.contains("only-real-host.test"))
        #expect(!c.stdout.contains(root + "/etc"), "\(c.stdout)")
        let classes = (c.json["endpoints"] as? [[String: Any]] ?? []).filter { $0["registry"] as? String == "docker.io" }.map { $0["class"] as? String }
        #expect(classes == ["dns_failure", "tcp_refused", "ok"])

        let usage = try CLI.run("regwatch-agent", ["check", "--host-root", "relative/dir"])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("--host-root: expected an absolute directory, got \"relative/dir\""), "\(usage.stderr)")
        let missing = try CLI.run("regwatch-agent", ["check", "--host-root", "\(lab.dir)/nowhere"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("is not a directory"))
        let badRegistry = try CLI.run("regwatch-agent", ["check", "--registry", "bad name"])
        #expect(badRegistry.status == 2)
        #expect(badRegistry.stderr.contains("--registry: \"bad name\" is not a registry host name"), "\(badRegistry.stderr)")
    }

    @Test("containerd with a non-default config_path, a registries.conf.d drop-in and k3s registries.yaml: each found, each with its file")
    func otherRuntimes() throws {
        let lab = try ZeroConfigLab()
        let root = "\(lab.dir)/k3s-node"
        try lab.write("\(root)/etc/containerd/config.toml", """
            version = 2
            [plugins."io.containerd.grpc.v1.cri".registry]
              config_path = "/srv/registry-hosts"
            """)
        try lab.write("\(root)/srv/registry-hosts/registry.internal:5000/hosts.toml", """
            server = "https://registry.internal:5000"
            [host."http://127.0.0.1:\(lab.alive)"]
              capabilities = ["pull", "resolve"]
            """)
        try lab.write("\(root)/etc/containers/registries.conf", "unqualified-search-registries = [\"docker.io\"]\n")
        try lab.write("\(root)/etc/containers/registries.conf.d/50-quay-mirror.conf", """
            [[registry]]
            prefix = "quay.io"
            location = "quay.io"
            [[registry.mirror]]
            location = "127.0.0.1:\(lab.dead)"
            insecure = true
            """)
        try lab.write("\(root)/etc/rancher/k3s/registries.yaml", """
            mirrors:
              ghcr.io:
                endpoint:
                  - "http://127.0.0.1:\(lab.alive)"
            configs:
              "ghcr.io":
                auth:
                  username: k3suser
                  password: k3s-secret-774
            """, mode: 0o600)
        let r = try lab.agent(["check", "--json", "--host-root", root, "--registry", "extra.test=http://127.0.0.1:\(lab.alive)"], mounts: [])
        let runtime = try #require(r.finding("runtime", "containerd"), "\(r.stdout)\(r.stderr)")
        #expect(runtime["source"] as? String == "/etc/containerd/config.toml")
        #expect((runtime["detail"] as? String)?.contains("/srv/registry-hosts (config_path)") == true)
        #expect(r.finding("mirrors", "registry.internal:5000")?["source"] as? String == "/srv/registry-hosts/registry.internal:5000/hosts.toml")
        #expect(r.finding("mirrors", "quay.io")?["source"] as? String == "/etc/containers/registries.conf.d/50-quay-mirror.conf")
        #expect(r.finding("mirrors", "ghcr.io")?["source"] as? String == "/etc/rancher/k3s/registries.yaml")
        #expect(r.finding("credentials", "ghcr.io")?["detail"] as? String == "user k3suser")
        #expect(r.finding("registry", "extra.test")?["source"] as? String == "--registry")

        let states = try #require(r.json["runtime"] as? [String: [String: Any]])
        #expect((states["containerd"]?["mirrors"] as? [String: [String]])?["registry.internal:5000"] == ["http://127.0.0.1:\(lab.alive)"])
        #expect((states["crio"]?["mirrors"] as? [String: [String]])?["quay.io"] == ["127.0.0.1:\(lab.dead)"])
        let endpoints = (r.json["endpoints"] as? [[String: Any]] ?? []).map { "\($0["registry"] as? String ?? "") \($0["endpoint"] as? String ?? "") \($0["class"] as? String ?? "")" }
        #expect(endpoints.contains("registry.internal:5000 http://127.0.0.1:\(lab.alive) ok"), "\(endpoints)")
        // containers/image tries https first on an insecure mirror, then plain http.
        #expect(endpoints.contains("quay.io https://127.0.0.1:\(lab.dead) tcp_refused"), "\(endpoints)")
        #expect(endpoints.contains("ghcr.io http://127.0.0.1:\(lab.alive) ok"), "\(endpoints)")
        #expect(endpoints.contains("extra.test http://127.0.0.1:\(lab.alive) ok"), "\(endpoints)")
        for secret in ZeroConfigLab.secrets { #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret)) }
    }
}
