import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Pull log parser")
struct PullLogParserTests {
    static let lines: [String] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/logs/pull-failures.log")
        return ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }()

    @Test("containerd CRI PullImage failure: image, registry, rate_limited")
    func containerd() throws {
        let f = try #require(PullLogParser.parse(Self.lines[0]))
        #expect(f.image == "docker.io/library/nginx:1.27")
        #expect(f.registry == "docker.io")
        #expect(f.errorClass == .rateLimited)
    }

    @Test("containerd trying next host: the mirror and a dial timeout")
    func tryingNextHost() throws {
        let f = try #require(PullLogParser.parse(Self.lines[1]))
        #expect(f.endpoint == "https://mirror-b:5000")
        #expect(f.errorClass == .tcpTimeout)
    }

    @Test("kubelet Failed to pull image: image with its registry, auth_failed")
    func kubelet() throws {
        let f = try #require(PullLogParser.parse(Self.lines[2]))
        #expect(f.image == "registry.example:5000/team/app:2")
        #expect(f.registry == "registry.example:5000")
        #expect(f.errorClass == .authFailed)
    }

    @Test("dockerd: next endpoint after a refused mirror; POST /images/create not found")
    func dockerd() throws {
        let next = try #require(PullLogParser.parse(Self.lines[3]))
        #expect(next.endpoint == "https://mirror-a:5000")
        #expect(next.errorClass == .tcpRefused)
        let create = try #require(PullLogParser.parse(Self.lines[4]))
        #expect(create.errorClass == .notFound)
    }

    @Test("successful pulls and unrelated lines are not failures")
    func notFailures() {
        #expect(PullLogParser.parse(Self.lines[5]) == nil)
        #expect(PullLogParser.parse(Self.lines[6]) == nil)
        #expect(PullLogParser.parse("level=info msg=\"starting containerd\"") == nil)
    }
}
