import ArgumentParser
import Foundation
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
            FileHandle.standardError.write(Data((Root.fullMessage(for: error) + "\n").utf8))
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
            Foundation.exit(exit.rawValue)
        } catch {
            let code = Root.exitCode(for: error)
            if code == .success {
                // `regwatch-agent` alone or `--help` on a command group: help, not an error.
                print(Root.fullMessage(for: error))
                exit(0)
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((Root.fullMessage(for: error) + "\n").utf8))
                exit(ExitCode.usage.rawValue)
            }
            FileHandle.standardError.write(Data("\(Root.configuration.commandName ?? "regwatch"): \(UserFacing.message(error))\n".utf8))
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
