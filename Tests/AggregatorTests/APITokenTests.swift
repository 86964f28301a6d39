import Foundation
@testable import RegwatchAggregator
import RegwatchShared
import Testing

@Suite("API token file")
struct APITokenTests {
    /// A token file with `mode`, reached through a symbolic link as in a Kubernetes Secret volume.
    func tokenFile(mode: Int) throws -> String {
        let dir = NSTemporaryDirectory() + "rw-token-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(dir)/..data", withIntermediateDirectories: true)
        try "0123456789abcdef-token\n".write(toFile: "\(dir)/..data/api-token", atomically: true, encoding: .utf8)
        chmod("\(dir)/..data/api-token", mode_t(mode))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/api-token", withDestinationPath: "..data/api-token")
        return "\(dir)/api-token"
    }

    @Test("owner-only and group-read (a Secret volume with fsGroup, behind a link) are accepted; others' read and group write are refused")
    func modes() throws {
        for mode in [0o600, 0o400, 0o440, 0o640] {
            #expect(try APIToken.load(tokenFile(mode: mode), configFile: "a.yaml")?.authorizes("Bearer 0123456789abcdef-token") == true, "mode \(String(mode, radix: 8))")
        }
        for mode in [0o644, 0o604, 0o660] {
            let path = try tokenFile(mode: mode)
            #expect(throws: ConfigError.self, "mode \(String(mode, radix: 8))") { try APIToken.load(path, configFile: "a.yaml") }
        }
    }
}
