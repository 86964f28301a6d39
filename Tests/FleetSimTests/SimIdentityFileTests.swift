import Foundation
import RegwatchFleetSim
import Testing

@Suite struct SimIdentityFileTests {
    func tempDir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rw-fleetsim-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func keysAndEnrollmentsSurviveARun() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = SimIdentityFile(stateDir: dir)
        var first = try file.load(count: 3, prefix: "sim", zones: 2, egresses: 3)
        #expect(first.map(\.hostID) == ["sim-00001", "sim-00002", "sim-00003"])
        #expect(first.map { $0.labels["zone"] } == ["zone-1", "zone-2", "zone-1"])
        #expect(first.allSatisfy { $0.enrolledWith == nil })
        first[1].enrolledWith = "SERVERKEY"
        try file.save(first)
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // A larger fleet keeps the first three as they were and makes the rest.
        let again = try file.load(count: 5, prefix: "sim", zones: 2, egresses: 3)
        #expect(again.prefix(3).map(\.keys.publicKey) == first.map(\.keys.publicKey))
        #expect(again[1].enrolledWith == "SERVERKEY")
        #expect(again[4].enrolledWith == nil)
        #expect(Set(again.map(\.keys.publicKey)).count == 5)
        try file.save(again)

        // A smaller run keeps the larger one's keys in the file.
        try file.save(try file.load(count: 2, prefix: "sim", zones: 2, egresses: 3))
        #expect(try file.load(count: 5, prefix: "sim", zones: 2, egresses: 3).map(\.keys.publicKey) == again.map(\.keys.publicKey))
    }

    @Test func aDamagedFileIsRefusedWithItsLine() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = SimIdentityFile(stateDir: dir)
        try file.save(try file.load(count: 2, prefix: "sim", zones: 1, egresses: 1))
        var text = try String(contentsOfFile: file.path, encoding: .utf8)
        text += "sim-00003\tnot-a-key\tnot-a-secret\t-\n"
        try text.write(toFile: file.path, atomically: true, encoding: .utf8)
        #expect(throws: SimError.file(file.path, "line 3 is not `host TAB public TAB secret TAB server-key` with a matching key pair")) {
            try file.load(count: 3, prefix: "sim", zones: 1, egresses: 1)
        }
    }
}
