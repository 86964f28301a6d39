import Foundation
import RegwatchTestSupport
import Testing

/// The executables as users run them: exit codes and one-line errors (the CLI contract: README, docs/errors.md).
@Suite("CLI", .ownThread)
struct CLITests {
    let dir = CLI.tempDir("cli")

    func aggregatorConfig(_ extra: String = "") throws -> String {
        let path = "\(dir)/aggregator.yaml"
        try "listen: {zmq: \"tcp://127.0.0.1:0\"}\nkeys: {dir: \(dir)/keys}\n\(extra)".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func expectOneLineError(_ r: CLI.Result, contains parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 2, "exit \(r.status), stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderrLines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        for p in parts { #expect(r.stderr.contains(p), "stderr lacks \(p): \(r.stderr)", sourceLocation: sourceLocation) }
    }

    @Test("the agent binary loads FoundationEssentials only: no full Foundation, no ICU (its memory footprint rests on it)")
    func agentWithoutFoundation() throws {
        let (status, libraries) = try RegistryHarness.spawnAndWait("/usr/bin/ldd", [CLI.binary("regwatch-agent")])
        #expect(status == 0)
        #expect(libraries.contains("libzmq"), "ldd output: \(libraries)")
        for banned in ["libFoundation.so", "libFoundationInternationalization", "_FoundationICU", "libicu"] {
            #expect(!libraries.contains(banned), "the agent links \(banned)")
        }
        let (_, aggregator) = try RegistryHarness.spawnAndWait("/usr/bin/ldd", [CLI.binary("regwatch-aggregator")])
        #expect(aggregator.contains("libFoundation.so") || !aggregator.contains("libswiftCore"), "the check would see Foundation if it were there")
    }

    @Test("enrollment flow: generate, accept, list --json, refuse a second key, revoke")
    func enrollmentFlow() throws {
        let config = try aggregatorConfig()
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", config]).status == 0)
        for f in ["server.key", "signing.key"] {
            var st = stat()
            stat("\(dir)/keys/\(f)", &st)
            #expect(st.st_mode & 0o777 == 0o600, "\(f)")
        }
        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/a1"]).status == 0)
        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/a2"]).status == 0)
        let again = try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/a1"])
        expectOneLineError(again, contains: ["\(dir)/a1/agent.key", "already exists"])

        #expect(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "node-a1", "--key", "\(dir)/a1/agent.pub"]).status == 0)
        let second = try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "node-a1", "--key", "\(dir)/a2/agent.pub"])
        expectOneLineError(second, contains: ["node-a1 is already enrolled", "keys accept --host node-a1 --replace"])
        let secret = try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "node-a2", "--key", "\(dir)/a2/agent.key"])
        expectOneLineError(secret, contains: ["\(dir)/a2/agent.key", "holds a secret key"])

        let list = try CLI.run("regwatch-aggregator", ["keys", "list", "--config", config, "--json"])
        #expect(list.status == 0)
        let records = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]
        #expect(records?.count == 1)
        #expect(records?.first?["host"] as? String == "node-a1")

        #expect(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", config, "--host", "node-a1"]).status == 0)
        #expect(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "node-a1", "--key", "\(dir)/a2/agent.pub"]).status == 0)
        expectOneLineError(try CLI.run("regwatch-aggregator", ["keys", "revoke", "--config", config, "--host", "node-zz"]), contains: ["node-zz has no active enrollment"])
    }

    @Test("bad key files and arguments: one line naming the file or value, exit 2")
    func badInput() throws {
        let config = try aggregatorConfig()
        expectOneLineError(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "n1", "--key", "\(dir)/nope.pub"]),
                           contains: ["\(dir)/nope.pub: no such file"])
        try "public-key = \"not-a-key\"\n".write(toFile: "\(dir)/bad.pub", atomically: true, encoding: .utf8)
        expectOneLineError(try CLI.run("regwatch-aggregator", ["keys", "accept", "--config", config, "--host", "n1", "--key", "\(dir)/bad.pub"]),
                           contains: ["\(dir)/bad.pub", "not a CURVE key"])
        expectOneLineError(try CLI.run("regwatch-aggregator", ["keys", "list", "--config", "\(dir)/missing.yaml"]), contains: ["\(dir)/missing.yaml: no such file"])
        try "keys: {dir: [1, 2\n".write(toFile: "\(dir)/broken.yaml", atomically: true, encoding: .utf8)
        expectOneLineError(try CLI.run("regwatch-aggregator", ["keys", "list", "--config", "\(dir)/broken.yaml"]), contains: ["\(dir)/broken.yaml:", "not valid YAML"])
        let usage = try CLI.run("regwatch-aggregator", ["keys", "accept", "--host"])
        #expect(usage.status == 2)
        #expect(usage.stderr.hasPrefix("Error: Missing value for '--host <host>'"))
        #expect(try CLI.run("regwatch-agent", ["--help"]).status == 0)
    }

    @Test("validate: a config pointing at a missing key, a malformed key, or an endpoint libzmq rejects")
    func validate() throws {
        let agg = try aggregatorConfig()
        #expect(try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", agg]).status == 0)
        let okAgg = try CLI.run("regwatch-aggregator", ["validate", "--config", agg])
        #expect(okAgg.status == 0, "\(okAgg.stderr)")
        #expect(try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(dir)/a"]).status == 0)

        func agentConfig(endpoint: String = "tcp://127.0.0.1:7450", clientKey: String? = nil, serverKey: String? = nil) throws -> String {
            let path = "\(dir)/agent-\(UUID().uuidString).yaml"
            try """
            host: {id: node-a1}
            aggregator:
              endpoint: "\(endpoint)"
              serverKey: \(serverKey ?? "\(dir)/keys/server.pub")
              clientKey: \(clientKey ?? "\(dir)/a/agent.key")
              signingKey: \(dir)/keys/signing.pub
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let good = try agentConfig()
        let ok = try CLI.run("regwatch-agent", ["validate", "--config", good])
        #expect(ok.status == 0, "\(ok.stderr)")

        let missing = try agentConfig(clientKey: "\(dir)/absent.key")
        expectOneLineError(try CLI.run("regwatch-agent", ["validate", "--config", missing]),
                           contains: ["\(missing): aggregator.clientKey: \(dir)/absent.key: no such file"])
        let swapped = try agentConfig(serverKey: "\(dir)/keys/signing.pub")
        expectOneLineError(try CLI.run("regwatch-agent", ["validate", "--config", swapped]),
                           contains: ["aggregator.serverKey", "\(dir)/keys/signing.pub", "no public-key line"])
        let badEndpoint = try agentConfig(endpoint: "tcp://127.0.0.1:notaport")
        expectOneLineError(try CLI.run("regwatch-agent", ["validate", "--config", badEndpoint]),
                           contains: ["aggregator.endpoint", "\"tcp://127.0.0.1:notaport\" rejected by libzmq"])
        // A credentials file `run` would fail on fails validate too.
        let noCredentials = "\(dir)/no-credentials.yaml"
        try (try String(contentsOfFile: good, encoding: .utf8)).appending("\nregistries:\n  - {name: docker.io, credentials: \(dir)/absent.json}\n")
            .write(toFile: noCredentials, atomically: true, encoding: .utf8)
        expectOneLineError(try CLI.run("regwatch-agent", ["validate", "--config", noCredentials]), contains: ["\(dir)/absent.json: no such file"])
        let badScheme = try agentConfig(endpoint: "http://127.0.0.1:7450")
        expectOneLineError(try CLI.run("regwatch-agent", ["validate", "--config", badScheme]), contains: ["aggregator.endpoint", "Protocol not supported"])

        let badBind = try aggregatorConfig("")
        try "listen: {zmq: \"tcp://not an address\"}\nkeys: {dir: \(dir)/keys}\n".write(toFile: badBind, atomically: true, encoding: .utf8)
        expectOneLineError(try CLI.run("regwatch-aggregator", ["validate", "--config", badBind]), contains: ["listen.zmq", "rejected by libzmq"])
        try "listen: {zmq: \"tcp://127.0.0.1:0\"}\nkeys: {dir: \(dir)/nokeys}\n".write(toFile: badBind, atomically: true, encoding: .utf8)
        expectOneLineError(try CLI.run("regwatch-aggregator", ["validate", "--config", badBind]), contains: ["keys.dir", "\(dir)/nokeys/server.key: no such file", "keys generate"])
    }
}
