import Foundation
import Logging
import RegwatchShared
import ServiceLifecycle

/// Wires `regwatch-aggregator serve`: the ROUTER (CURVE + ZAP enrollment), the SQLite store, ingest,
/// the fleet gauges and maintenance, and the HTTP API, as services of one ``ServiceGroup`` that stops
/// gracefully on SIGTERM/SIGINT. The executable only parses arguments and bootstraps logging/metrics.
public struct AggregatorServer {
    public let config: AggregatorConfig
    public let configFile: String
    public let logger: Logger
    public let metricsText: @Sendable () -> String

    public init(config: AggregatorConfig, configFile: String, logger: Logger, metricsText: @escaping @Sendable () -> String) {
        self.config = config
        self.configFile = configFile
        self.logger = logger
        self.metricsText = metricsText
    }

    public func run() async throws {
        guard let http = APIServer.parseAddress(config.httpAddress) else {
            throw ConfigError(file: configFile, key: "listen.http", message: "expected HOST:PORT, got \"\(config.httpAddress)\"")
        }
        try EndpointCheck.validateBindEndpoint(config.zmqEndpoint, configFile: configFile, key: "listen.zmq")
        let apiToken = try APIToken.load(config.apiToken, configFile: configFile)
        let store = try config.openStore(configFile: configFile, logger: logger)
        // Alone on its file, no agent is connected before it listens. Sharing a database, the hosts
        // connected to the other aggregators are: each host's flag follows its reports there.
        if !store.isShared { try store.setAllDisconnected() }

        let enrollmentBackend = try config.enrollmentBackend(configFile: configFile, migrated: true, logger: logger)
        // Before the first handshake: enrollments a previous SQLite setup left in keys.dir, and the stamps
        // (never read, they would hide the current enrollments).
        for file in try enrollmentBackend.importFiles() {
            logger.notice("imported an enrollment file into the database; from now on the database holds it", metadata: ["file": "\(file)"])
        }
        try enrollmentBackend.refreshStamps()
        let security: RouterSecurity
        var authenticator: EnrollmentAuthenticator?
        var signer: CommandSigner?
        if config.insecure {
            security = .insecure
            logger.critical("aggregator running WITHOUT CURVE (insecure: true): any process that can reach \(config.zmqEndpoint) can report as any host")
        } else {
            let keys: ServerKeys
            do { keys = try ServerKeys.load(keysDir: config.keysDir) } catch {
                throw ConfigError(file: configFile, key: "keys.dir", message: "\(error.description) (run: regwatch-aggregator keys generate)")
            }
            security = .curve(serverKeys: keys.transport)
            signer = keys.signer
            authenticator = EnrollmentAuthenticator(backend: enrollmentBackend, logger: logger)
        }
        let router = RouterServer(
            configuration: .init(endpoint: config.zmqEndpoint, security: security, limits: config.transport),
            authenticator: authenticator, logger: logger)
        let enrolled = authenticator
        if signer == nil, let key = try? KeyFiles.readSigningKey("\(config.keysDir)/\(KeyFiles.signingSecret)") {
            signer = CommandSigner(key: key)
        }
        let leadership = Leadership()
        let reporters = RecentReporters()
        let election = LeaderElectionService(
            lock: try config.leaderLock(configFile: configFile, logger: logger), store: store,
            holder: "\(ProcessInfo.processInfo.hostName) \(config.httpAddress)", interval: config.leaderCheckInterval,
            leadership: leadership, logger: logger)
        // The first check now: a lone aggregator (SQLite, or the first of several) leads from its first window.
        election.check(now: Date())
        let failover = try FailoverService(
            store: store, settings: FailoverSettings(config.failover, correlation: config.correlation), signer: signer, router: router,
            interval: config.correlation.window, staleAfter: config.correlation.staleAfter, logger: logger, leadership: leadership,
            reporters: reporters)
        // Everything that can fail is done before the router's I/O thread starts.
        let bound = try router.start()
        let enrollment = authenticator.map {
            EnrollmentService(settings: .init(config.enrollment), authenticator: $0, backend: enrollmentBackend, router: router, logger: logger)
        }
        let ingest = IngestService(
            router: router, store: store, isEnrolled: { enrolled?.isEnrolled(host: $0) ?? true },
            failoverAcks: { host, ack in failover.receive(ack: ack, from: host) }, enrollment: enrollment, reporters: reporters, logger: logger)
        var gaugeOptions = FleetGaugesService.Options()
        gaugeOptions.staleAfter = config.correlation.staleAfter
        let gauges = FleetGaugesService(store: store, router: router, options: gaugeOptions, logger: logger)
        let settings = CorrelationSettings(config.correlation)
        let alerts = AlertDispatcher(webhooks: config.webhooks, generatorURL: "http://\(config.httpAddress)/api/v1/outages", logger: logger)
        let correlation = CorrelationService(store: store, settings: settings, alerts: alerts, logger: logger, leadership: leadership)
        let api = APIServer.makeApplication(
            store: store,
            options: .init(host: http.host, port: http.port, staleAfter: config.correlation.staleAfter, metricsText: metricsText,
                           failover: failover, apiToken: apiToken, leadership: leadership),
            logger: logger)
        logger.notice("aggregator serving", metadata: [
            "zmq": "\(bound)", "http": "\(config.httpAddress)", "database": "\(store.location)",
            "transport": "\(config.insecure ? "INSECURE" : "CURVE")",
        ])
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: election), .init(service: router), .init(service: ingest), .init(service: alerts), .init(service: correlation), .init(service: failover),
            .init(service: gauges), .init(service: api),
        ]
        if let enrollment { services.append(.init(service: enrollment)) }
        if case .postgres = enrollmentBackend {
            services.append(.init(service: EnrollmentStampService(backend: enrollmentBackend, authenticator: authenticator, logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        ingest.commitPending()
        store.close()
    }
}
