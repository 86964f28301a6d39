import Foundation
import Logging
import RegwatchShared
import RegwatchTestSupport
import Testing

/// A real dockerd (Debian `docker.io`) in a network namespace with only `lo` and a dead resolver, pulling
/// through a mirror: the agent (on the host, reading dockerd's unix socket and its log file) turns the
/// successful pull into an event from `/events` and the failed one into a classified failure from the
/// daemon's own log lines, and both reach a ROUTER over CURVE.
@Suite("dockerd pull events", .serialized, .ownThread, .tags(.root))
struct DockerPullEventsTests {
    @Test("pull through a mirror is a success event with image and registry; mirror down and no upstream is a classified failure")
    func pulls() async throws {
        let h = RegistryHarness("dpull")
        let d = h.dir
        let ns = try DockerNamespace(h)
        defer { ns.tearDown() }

        // Fill the mirror's storage on the host, then serve it inside the namespace.
        let fill = try h.startRegistry(name: "mirror")
        try h.pushImage(port: fill, repository: "test/app", tag: "1")
        h.stop(name: "mirror")
        let mirrorPort = 15_400 + Int.random(in: 0..<500)
        try h.startRegistry(name: "mirror", netns: ns.name, port: mirrorPort)

        // Nothing answers DNS in the namespace: the fall-through to Docker Hub fails without leaving it.
        try "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n".write(toFile: "\(d)/resolv.conf", atomically: true, encoding: .utf8)
        try #"{"registry-mirrors": ["http://127.0.0.1:\#(mirrorPort)"], "storage-driver": "vfs", "iptables": false, "ip-masq": false, "bridge": "none"}"#
            .write(toFile: "\(d)/daemon.json", atomically: true, encoding: .utf8)
        try ns.startDockerd(resolv: "\(d)/resolv.conf")

        // The aggregator side: a ROUTER with the agent's key enrolled.
        try "keys: {dir: \(d)/keys}\n".write(toFile: "\(d)/aggregator.yaml", atomically: true, encoding: .utf8)
        _ = try CLI.run("regwatch-aggregator", ["keys", "generate", "--config", "\(d)/aggregator.yaml"])
        _ = try CLI.run("regwatch-agent", ["keys", "generate", "--out", "\(d)/agent"])
        let router = RouterServer(
            configuration: .init(endpoint: "tcp://127.0.0.1:*", security: .curve(serverKeys: try KeyFiles.readCurveKeyPair("\(d)/keys/server.key"))),
            authenticator: SingleKeyAuthenticator(key: try KeyFiles.readCurvePublicKey("\(d)/agent/agent.pub"), hostID: "node-pull"),
            logger: .init(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let endpoint = try router.start()
        try """
        host: {id: node-pull}
        aggregator: {endpoint: "\(endpoint)", serverKey: \(d)/keys/server.pub, clientKey: \(d)/agent/agent.key, signingKey: \(d)/keys/signing.pub}
        interval: 1s
        stateDir: \(d)/state
        runtime:
          docker: {daemonJSON: \(d)/daemon.json, socket: \(d)/docker.sock, reload: none}
        events: {files: [\(d)/dockerd.log], filePoll: 100ms, journalUnits: []}
        """.write(toFile: "\(d)/agent.yaml", atomically: true, encoding: .utf8)
        try markEnrolled(stateDir: "\(d)/state", host: "node-pull", keyDir: "\(d)/agent", serverPub: "\(d)/keys/server.pub")
        let agent = try h.start(CLI.binary("regwatch-agent"), ["run", "--config", "\(d)/agent.yaml"])
        defer { kill(agent.processIdentifier, SIGKILL) }

        // Every 1 s report keeps the stream moving, but a dead agent would not: the whole wait has a deadline.
        let events = try await withDeadline(90, "a success and a mirror failure from dockerd's pulls") { () -> [PullEvent] in
            var events: [PullEvent] = []
            var pulledOK = false, pulledFailing = false
            for await message in router.inbound {
                #expect(message.authenticatedHost == "node-pull")
                switch try WireCodec().decode(message.payload) {
                case .report(let env):
                    let sources = Dictionary(uniqueKeysWithValues: env.body.eventSources.map { ($0.name, $0.state) })
                    if !pulledOK, sources["docker-events"] == .active, sources["file:\(d)/dockerd.log"] == .active {
                        // Both sources are live: pull through the mirror.
                        let (status, _) = try RegistryHarness.spawnAndWait("/usr/bin/docker", ["-H", "unix://\(d)/docker.sock", "pull", "test/app:1"])
                        #expect(status == 0, "docker pull through the mirror failed")
                        pulledOK = true
                    }
                case .pullEvents(let env):
                    events += env.body.events
                    _ = router.trySend(to: message.peer, payload: try WireCodec().encode(Envelope(host: "aggregator", seq: 0, sentAt: Date(), body: EventsAck(seqs: env.body.events.map(\.seq)))))
                    if !pulledFailing, events.contains(where: { $0.result == .success }) {
                        // Now the mirror dies and Docker Hub is unreachable inside the namespace.
                        h.stop(name: "mirror")
                        let (status, _) = try RegistryHarness.spawnAndWait("/usr/bin/docker", ["-H", "unix://\(d)/docker.sock", "pull", "test/app:2"])
                        #expect(status != 0)
                        pulledFailing = true
                    }
                default: break
                }
                if events.contains(where: { $0.result == .failure && $0.endpoint?.contains(":\(mirrorPort)") == true }) { break }
            }
            return events
        }
        let success = try #require(events.first { $0.result == .success }, "no success event; got \(events)")
        #expect(success.image == "docker.io/test/app:1")
        #expect(success.registry == "docker.io")
        #expect(success.source == "docker-events")
        let mirrorFailure = try #require(events.first { $0.result == .failure && $0.endpoint?.contains(":\(mirrorPort)") == true },
                                         "no failure naming the mirror; got \(events); dockerd log: \((try? String(contentsOfFile: "\(d)/dockerd.log", encoding: .utf8))?.suffix(2000) ?? "")")
        #expect(mirrorFailure.errorClass == .tcpRefused)
        #expect(mirrorFailure.source == "file:\(d)/dockerd.log")
        await router.shutdown()
    }
}
