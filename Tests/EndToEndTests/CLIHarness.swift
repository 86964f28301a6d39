import Foundation
import RegwatchTestSupport

/// Runs the built executables as a user would, capturing exit code, stdout and stderr.
enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func binary(_ name: String) -> String {
        // `swift build --build-tests` (what `make test` runs) builds the executables next to the tests.
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path,
            root.appendingPathComponent(".build/debug/\(name)").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stderrLines: [Substring] { stderr.split(separator: "\n") }
    }

    static func run(_ name: String, _ args: [String]) throws -> Result {
        try runRaw(binary(name), args)
    }

    /// Runs any executable by path (posix_spawn + waitpid: see `RegistryHarness.spawnAndWait`).
    static func runRaw(_ executable: String, _ args: [String]) throws -> Result {
        var env = ProcessInfo.processInfo.environment
        env["REGWATCH_LOG_LEVEL"] = "error"
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("rw-cli-\(UUID().uuidString).err").path
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let (status, out) = try RegistryHarness.spawnAndWait(executable, args, stderrPath: errPath, environment: env)
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Result(status: status, stdout: out, stderr: err)
    }

    static func tempDir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rw-e2e-\(name)-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}
