import ArgumentParser
import Foundation
import RegwatchAgent
import RegwatchCLI
import RegwatchShared

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regwatch-agent",
        abstract: "Watches this host's path to its container registries and reports to the regwatch aggregator.",
        subcommands: [Check.self, Keys.self, Validate.self]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Agent configuration file.")
    var config: String = AgentConfig.defaultPath
}

extension AgentCommand {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one check cycle on this host: every registry endpoint and the runtimes' mirror configuration.",
            discussion: "Exit 0 when everything is healthy, 1 when problems were found, 2 on a usage or configuration error."
        )

        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() async throws {
            let config = try AgentConfig.load(options.config)
            let credentials = try CheckCycle.loadCredentials(config)
            let report = await CheckCycle(config: config, prober: RegistryProber(runner: CurlMultiRunner()), credentials: credentials).run()
            if json { try printJSON(report) } else { print(formatCheckTable(report)) }
            if !report.healthy { throw ExitCode.problems }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage this agent's CURVE key.", subcommands: [Generate.self])

        struct Generate: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Write DIR/agent.key (0600) and DIR/agent.pub; never overwrites a key.")

            @Option(name: .long, help: "Directory for the key files.")
            var out: String

            func run() throws {
                let written = try AgentKeyGenerator.generate(into: out)
                print("wrote \(written.secretPath) (secret, 0600) and \(written.publicPath)")
                print("public key: \(written.publicKey)")
                print("enroll it on the aggregator: regwatch-aggregator keys accept --host HOST_ID --key \(written.publicPath)")
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the config file, the key files it names and the aggregator endpoint; exit 2 on the first problem.")

        @OptionGroup var options: ConfigOption

        func run() throws {
            let config = try AgentConfig.load(options.config)
            let credentials = try AgentCredentials.load(config, configFile: options.config)
            try EndpointCheck.validateConnectEndpoint(config.aggregator.endpoint, configFile: options.config, key: "aggregator.endpoint")
            let mode = config.aggregator.insecure ? "INSECURE (no CURVE)" : "CURVE"
            print("\(options.config): ok (host \(config.host.id), aggregator \(config.aggregator.endpoint) over \(mode), \(config.registries.count) registries, signing key \(credentials.commandVerifier == nil ? "absent" : "pinned"))")
        }
    }
}

await CLIRunner.main(AgentCommand.self)
