import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Agent config")
struct AgentConfigTests {
    func parse(_ yaml: String) throws -> AgentConfig {
        try AgentConfig.parse(ConfigNode.parse(yaml, file: "agent.yaml"), defaultHostID: "fallback-host")
    }

    func expectError(_ yaml: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)" == expected, sourceLocation: sourceLocation)
        }
    }

    @Test("host.root: every host path the agent reads or writes goes under it, the agent's own secrets do not; --host-root wins")
    func hostRoot() throws {
        let yaml = """
        host: {id: n1, root: /host}
        aggregator: {serverKey: /secrets/server.pub, signingKey: /secrets/signing.pub, bootstrapToken: /secrets/token}
        stateDir: /var/lib/regwatch
        registries:
          - {name: docker.io, credentials: /root/.docker/config.json, ca: /etc/ssl/hub.pem, mirrors: [{url: "https://m:5000", ca: /etc/ssl/m.pem}]}
        runtime:
          docker: {}
          containerd: {certsDir: "/etc/containerd/certs.d:/srv/certs.d"}
          crio: {}
        events: {files: [/var/log/pulls.log]}
        """
        let c = try parse(yaml)
        #expect(c.hostRoot.prefix == "/host")
        #expect(c.stateDir == "/host/var/lib/regwatch")
        // The key the agent makes lives in its state directory, on the host.
        #expect(c.aggregator.clientKey == "/host/var/lib/regwatch/agent.key")
        #expect([c.aggregator.serverKey, c.aggregator.signingKey, c.aggregator.bootstrapToken] == ["/secrets/server.pub", "/secrets/signing.pub", "/secrets/token"])
        #expect(c.registries[0].credentials == "/host/root/.docker/config.json")
        #expect(c.registries[0].ca == "/host/etc/ssl/hub.pem")
        #expect(c.registries[0].mirrorCAs == ["https://m:5000": "/host/etc/ssl/m.pem"])
        #expect(c.runtime.docker.map { [$0.daemonJSON, $0.socket, $0.pidFile] } == ["/host/etc/docker/daemon.json", "/host/var/run/docker.sock", "/host/var/run/docker.pid"])
        #expect(c.runtime.containerd?.certsDir == "/host/etc/containerd/certs.d:/host/srv/certs.d")
        #expect(c.runtime.crio?.registriesConf == "/host/etc/containers/registries.conf")
        #expect(c.events.files == ["/host/var/log/pulls.log"])
        #expect(c.rooted(at: HostRoot("/host")!) == c)

        let flag = try AgentConfig.parse(ConfigNode.parse(yaml, file: "agent.yaml"), defaultHostID: "h", hostRoot: HostRoot("/other")!)
        #expect(flag.stateDir == "/other/var/lib/regwatch")
        let none = try AgentConfig.parse(ConfigNode.parse(yaml, file: "agent.yaml"), defaultHostID: "h", hostRoot: HostRoot())
        #expect(none.stateDir == "/var/lib/regwatch" && none.hostRoot.isHost)
        expectError("aggregator: {insecure: true}\nhost: {root: host}\n", "agent.yaml:2: host.root: expected an absolute directory, got \"host\"")
    }

    @Test("the contract's example parses, with defaults for what it leaves out")
    func contractExample() throws {
        let c = try parse("""
        host: {id: node-a1, labels: {zone: z1, egress: 203.0.113.7}}
        aggregator: {endpoint: "tcp://127.0.0.1:7450", serverKey: /k/server.pub, clientKey: /k/agent.key, signingKey: /k/signing.pub, insecure: false}
        interval: 30s
        stateDir: /var/lib/regwatch
        registries:
          - name: docker.io
            upstream: https://registry-1.docker.io
            probeImage: library/alpine:latest
            rateLimit: true
            credentials: /root/.docker/config.json
            mirrors: [https://mirror-a:5000, {url: "http://mirror-b:5000", insecure: true, authenticated: true}]
        runtime:
          docker: {daemonJSON: /etc/docker/daemon.json, socket: /var/run/docker.sock, reload: signal}
          containerd: {certsDir: /etc/containerd/certs.d}
          crio: {registriesConf: /etc/containers/registries.conf, reload: signal}
        """)
        #expect(c.host == HostIdentity(id: "node-a1", labels: ["zone": "z1", "egress": "203.0.113.7"]))
        #expect(c.interval == .seconds(30))
        #expect(c.registries[0].mirrors == [MirrorSpec(url: "https://mirror-a:5000"), MirrorSpec(url: "http://mirror-b:5000", authenticated: true, insecure: true)])
        #expect(c.runtime.docker?.reload == .signal)
        #expect(c.runtime.crio?.registriesConf == "/etc/containers/registries.conf")
        #expect(c.transport == TransportLimits())
    }

    @Test("minimal insecure config: host id defaults to the hostname")
    func minimal() throws {
        let c = try parse("aggregator: {insecure: true}\n")
        #expect(c.host.id == "fallback-host")
        #expect(c.aggregator.endpoint == "tcp://127.0.0.1:7450")
        #expect(c.stateDir == "/var/lib/regwatch")
        #expect(c.runtime.docker == nil)
    }

    @Test("several aggregators: endpoints in order; endpoint and endpoints together, an empty or repeated list refused")
    func endpoints() throws {
        let c = try parse("aggregator: {insecure: true, endpoints: [\"tcp://a:7450\", \"tcp://b:7450\"]}\n")
        #expect(c.aggregator.endpoints == ["tcp://a:7450", "tcp://b:7450"] && c.aggregator.endpoint == "tcp://a:7450")
        #expect(try parse("aggregator: {insecure: true, endpoint: \"tcp://a:7450\"}\n").aggregator.endpoints == ["tcp://a:7450"])
        expectError("aggregator: {insecure: true, endpoint: tcp://a:1, endpoints: [tcp://b:1]}\n", "agent.yaml:1: aggregator.endpoints: give endpoint or endpoints, not both")
        expectError("aggregator: {insecure: true, endpoints: []}\n", "agent.yaml:1: aggregator.endpoints: expected 1 to 16 endpoints, got 0")
        expectError("aggregator: {insecure: true, endpoints: [tcp://b:1, tcp://b:1]}\n", "agent.yaml:1: aggregator.endpoints: an endpoint is listed twice")
    }

    @Test("bad values are one line naming file, line and key")
    func badValues() {
        expectError("aggregator: {insecure: true}\nintervall: 30s\n", "agent.yaml:2: intervall: unknown key")
        expectError("aggregator: {insecure: true}\ninterval: soon\n", "agent.yaml:2: interval: expected a duration like 30s, 500ms, 5m or 1h, got \"soon\"")
        expectError("aggregator: {insecure: true}\nhost: {id: \"bad host\"}\n", "agent.yaml:2: host.id: \"bad host\" is not a valid host id (letters, digits, . _ -; at most 63)")
        expectError("aggregator: {endpoint: \"tcp://x:1\"}\n", "agent.yaml:1: aggregator.serverKey: required unless aggregator.insecure is true")
        expectError("aggregator: {insecure: yes please}\n", "agent.yaml:1: aggregator.insecure: expected true or false, got \"yes please\"")
        expectError("aggregator: {insecure: true}\nregistries:\n  - name: docker.io\n    mirrors: [\"http://m:5000\"]\n",
                    "agent.yaml:4: registries[0].mirrors[0]: http://m:5000 is plain http: mark the mirror insecure: true to allow it")
        expectError("aggregator: {insecure: true}\nregistries:\n  - name: docker.io\n    mirrors: [\"ftp://m\"]\n",
                    "agent.yaml:4: registries[0].mirrors[0]: expected an http(s) URL, got \"ftp://m\"")
        expectError("aggregator: {insecure: true}\nregistries:\n  - name: \"../../etc\"\n",
                    "agent.yaml:3: registries[0].name: \"../../etc\" is not a registry host name (e.g. docker.io or registry.example:5000)")
        expectError("aggregator: {insecure: true}\nruntime: {docker: {reload: kill}}\n", "agent.yaml:2: runtime.docker.reload: expected signal, systemctl or none, got \"kill\"")
        expectError("aggregator: {insecure: true}\ntransport: {maxMessageSize: 10}\n", "agent.yaml:2: transport.maxMessageSize: 10 is out of range 1024...268435456")
    }

    @Test("a config pointing at a non-existent key names the config, the key and the file")
    func missingKeyFile() throws {
        let c = try parse("aggregator: {serverKey: /nonexistent/server.pub, clientKey: /nonexistent/agent.key, signingKey: /nonexistent/signing.pub}\n")
        do {
            _ = try AgentCredentials.load(c, configFile: "agent.yaml")
            Issue.record("loaded")
        } catch {
            #expect("\(error)" == "agent.yaml: aggregator.signingKey: /nonexistent/signing.pub: no such file")
        }
    }
}

@Suite("Agent keys")
struct AgentKeysTests {
    @Test("keys generate writes agent.key 0600 and agent.pub, refuses to overwrite, and the files load")
    func generate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-agent-\(UUID().uuidString)/keys").path
        let written = try AgentKeyGenerator.generate(into: dir)
        var st = stat()
        stat(written.secretPath, &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try KeyFiles.readCurveKeyPair(written.secretPath).publicKey.z85 == written.publicKey)
        #expect(try KeyFiles.readCurvePublicKey(written.publicPath).z85 == written.publicKey)
        #expect(throws: (any Error).self) { try AgentKeyGenerator.generate(into: dir) }
        #expect(try KeyFiles.readCurvePublicKey(written.publicPath).z85 == written.publicKey)
    }
}

@Suite("Agent config sections")
struct AgentConfigSectionTests {
    @Test("an empty runtime section enables it with defaults; a scalar where a section belongs is an error")
    func sections() throws {
        let c = try AgentConfig.parse(ConfigNode.parse("aggregator: {insecure: true}\nruntime:\n  docker:\n", file: "a.yaml"), defaultHostID: "h")
        #expect(c.runtime.docker?.daemonJSON == "/etc/docker/daemon.json")
        #expect(throws: ConfigError(file: "a.yaml", line: 2, key: "host", message: "expected a mapping of keys")) {
            try AgentConfig.parse(ConfigNode.parse("aggregator: {insecure: true}\nhost: foo\n", file: "a.yaml"), defaultHostID: "h")
        }
    }
}

@Suite("Shipped agent example")
struct AgentExampleConfigTests {
    @Test("deploy/agent.example.yaml parses and its events section states the defaults")
    func agentExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try AgentConfig.load(root.appendingPathComponent("deploy/agent.example.yaml").path)
        #expect(config.events == AgentConfig.Events())
        #expect(config.registries.first?.name == "docker.io")
    }
}

@Suite("Config environment variables and bootstrap tokens")
struct AgentConfigEnvironmentTests {
    func parse(_ yaml: String, _ env: [String: String]) throws -> AgentConfig {
        try AgentConfig.parse(ConfigNode.parse(yaml, file: "agent.yaml", environment: env), defaultHostID: "fallback-host")
    }

    @Test("one file serves every node: ${VAR} and ${VAR:-default} in strings, labels, paths, durations, numbers and flags")
    func expansion() throws {
        let c = try parse("""
        host: {id: "${NODE_NAME}", labels: {zone: "${ZONE:-z9}", rack: "r-${RACK}"}}
        aggregator: {insecure: "${INSECURE}"}
        interval: ${INTERVAL}
        stateDir: /var/lib/regwatch/${NODE_NAME}
        events: {batchMaxEvents: "${BATCH}", journalUnits: []}
        """, ["NODE_NAME": "node-7", "RACK": "4", "INSECURE": "true", "INTERVAL": "15s", "BATCH": "42"])
        #expect(c.host.id == "node-7")
        #expect(c.host.labels == ["zone": "z9", "rack": "r-4"])
        #expect(c.aggregator.insecure)
        #expect(c.interval == .seconds(15))
        #expect(c.stateDir == "/var/lib/regwatch/node-7")
        #expect(c.events.batchMaxEvents == 42)
        let literal = try parse("aggregator: {insecure: true}\nstateDir: \"/x/$${HOME}\"\n", [:])
        #expect(literal.stateDir == "/x/${HOME}")
    }

    @Test("an unset variable, a bad name or an unterminated ${ is one line naming the key and the variable")
    func errors() {
        for (yaml, expected) in [
            ("aggregator: {insecure: true}\nhost: {id: \"${NODE_NAME}\"}\n", "agent.yaml:2: host.id: environment variable NODE_NAME is not set"),
            ("aggregator: {insecure: true}\nstateDir: \"${1X}\"\n", "agent.yaml:2: stateDir: \"${1X}\" is not an environment variable name (letters, digits, _)"),
            ("aggregator: {insecure: true}\nstateDir: \"/a/${HOME\"\n", "agent.yaml:2: stateDir: unterminated ${ in \"/a/${HOME\""),
            ("aggregator: {insecure: true}\ninterval: \"${I}\"\n", "agent.yaml:2: interval: expected a duration like 30s, 500ms, 5m or 1h, got \"${I}\""),
        ] {
            do {
                _ = try parse(yaml, ["I": "soon"])
                Issue.record("accepted \(yaml)")
            } catch {
                #expect("\(error)" == expected)
            }
        }
    }

    @Test("with bootstrapToken, clientKey defaults to stateDir/agent.key and the key is made on first start, 0600 in a 0700 directory, and kept")
    func bootstrapKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rw-boot-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try parse("aggregator: {serverKey: /s.pub, signingKey: /g.pub, bootstrapToken: /t}\nstateDir: \(dir)/state\n", [:])
        #expect(c.aggregator.clientKey == "\(dir)/state/agent.key")
        #expect(try AgentIdentity.ensureKey(c, configFile: "agent.yaml"))
        var st = stat()
        #expect(stat("\(dir)/state/agent.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(stat("\(dir)/state", &st) == 0 && st.st_mode & 0o777 == 0o700)
        let first = try KeyFiles.readCurveKeyPair("\(dir)/state/agent.key").publicKey
        #expect(try !AgentIdentity.ensureKey(c, configFile: "agent.yaml"))
        #expect(try KeyFiles.readCurveKeyPair("\(dir)/state/agent.key").publicKey == first)
        // Without a token nothing is made: the key file is the operator's.
        let manual = try parse("aggregator: {serverKey: /s.pub, signingKey: /g.pub, clientKey: \(dir)/other.key}\n", [:])
        #expect(try !AgentIdentity.ensureKey(manual, configFile: "agent.yaml"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/other.key"))
        do {
            _ = try parse("aggregator: {serverKey: /s.pub, signingKey: /g.pub}\n", [:])
            Issue.record("accepted a config with neither clientKey nor bootstrapToken")
        } catch {
            #expect("\(error)".contains("aggregator.clientKey: required unless aggregator.bootstrapToken is set"))
        }
    }

    @Test("the token file: one line; empty or several lines is an error naming the file")
    func tokenFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rw-token-\(UUID().uuidString)").path
        defer { unlink(path) }
        try "  rwj_abc  \n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AgentIdentity.readToken(path) == "rwj_abc")
        for bad in ["", "a\nb\n"] {
            try bad.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: KeyFileError(path: path, reason: "expected one line holding the bootstrap token")) { try AgentIdentity.readToken(path) }
        }
        #expect(throws: KeyFileError(path: "/nonexistent/t", reason: "no such file")) { try AgentIdentity.readToken("/nonexistent/t") }
    }
}
