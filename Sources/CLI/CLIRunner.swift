import ArgumentParser
import FoundationEssentials
import Glibc
import Logging

/// Runs a root command with regwatch's exit-code contract: 0 fine, 1 problems found, 2 usage or
/// configuration error. A user mistake prints one line naming the file, key or value, never a trace.
public enum CLIRunner {
    public static func main<Root: ParsableCommand>(_ root: Root.Type) async -> Never {
        bootstrapLogging()
        let command: any ParsableCommand
        do {
            command = try Root.parseAsRoot()
        } catch {
            let code = Root.exitCode(for: error)
            if code == .success {
                print(Root.fullMessage(for: error))
                exit(0)
            }
            StandardError.write(Root.fullMessage(for: error) + "\n")
            exit(ExitCode.usage.rawValue)
        }
        do {
            var command = command
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let exit as ExitCode {
            Glibc.exit(exit.rawValue)
        } catch {
            let code = Root.exitCode(for: error)
            if code == .success {
                // `regwatch-agent` alone or `--help` on a command group: help, not an error.
                print(Root.fullMessage(for: error))
                exit(0)
            }
            if code == .validationFailure {
                StandardError.write(Root.fullMessage(for: error) + "\n")
                exit(ExitCode.usage.rawValue)
            }
            StandardError.write("\(Root.configuration.commandName ?? "regwatch"): \(UserFacing.message(error))\n")
            exit(ExitCode.usage.rawValue)
        }
    }

    /// Logs go to stderr; `REGWATCH_LOG_LEVEL` (trace … critical) sets the level, default info.
    public static func bootstrapLogging() {
        let level = ProcessInfo.processInfo.environment["REGWATCH_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

extension ExitCode {
    /// Problems found (a check failed, a probe is unhealthy).
    public static let problems = ExitCode(1)
    /// Usage or configuration error.
    public static let usage = ExitCode(2)
}

/// Messages for the user that are not the command's output.
public enum StandardError {
    public static func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}

/// Turns any error into the one line a user sees.
public enum UserFacing {
    public static func message(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}

/// Prints values as pretty, key-sorted JSON on stdout (the `--json` flag of every command).
public func printJSON<T: Encodable>(_ value: T) throws {
    let data = try RegwatchJSON.encoder().encode(value)
    print(String(decoding: data, as: UTF8.self))
}
