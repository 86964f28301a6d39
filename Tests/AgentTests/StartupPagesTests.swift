import Foundation
@testable import RegwatchAgent
import RegwatchShared
import Testing

@Suite("Start-up pages")
struct StartupPagesTests {
    /// Resident kilobytes of this process's executable code mappings, from /proc/self/smaps.
    static func residentCodeKB() throws -> Int {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let smaps = try String(contentsOfFile: "/proc/self/smaps", encoding: .utf8)
        var total = 0, inCode = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), fields.count >= 2, first.first?.isHexDigit == true {
                inCode = fields.count >= 6 && fields[1] == "r-xp" && fields[5...].joined(separator: " ") == exe
            } else if inCode, fields.first == "Rss:", fields.count >= 2, let kb = Int(fields[1]) {
                total += kb
            }
        }
        return total
    }

    @Test("dropping the executable's code from the page tables lowers its resident size, and the process runs on (the pages come back from the file)")
    func release() throws {
        let before = try Self.residentCodeKB()
        #expect(before > 0)
        let released = try #require(StartupPages.release())
        let after = try Self.residentCodeKB()
        #expect(released > 0)
        #expect(after < before, "resident code \(before) kB before, \(after) kB after")
        // Code runs again from the file: parsing a config exercises plenty of it.
        let config = try AgentConfig.parse(ConfigNode.parse("host: {id: node-p}\naggregator: {insecure: true}\n", file: "agent.yaml"), defaultHostID: "fallback-host")
        #expect(config.host.id == "node-p")
    }
}
