// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "regwatch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "regwatch-agent", targets: ["regwatch-agent"]),
        .executable(name: "regwatch-aggregator", targets: ["regwatch-aggregator"]),
        .executable(name: "regwatch-fleetsim", targets: ["regwatch-fleetsim"]),
        // For the fuzz targets in Fuzz/ (a package of their own: they build with -sanitize=fuzzer).
        .library(name: "RegwatchShared", targets: ["RegwatchShared"]),
        .library(name: "RegwatchAgent", targets: ["RegwatchAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.25.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
    ],
    targets: [
        // C modules
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
        .target(name: "CCurl", path: "Sources/CCurl", linkerSettings: [.linkedLibrary("curl")]),

        // Libraries
        .target(
            name: "RegwatchShared",
            dependencies: [
                "CZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Shared"
        ),
        .target(
            name: "RegwatchAgent",
            dependencies: [
                "RegwatchShared", "CCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Agent"
        ),
        .target(
            name: "RegwatchAggregator",
            dependencies: [
                "RegwatchShared",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Aggregator"
        ),

        .target(
            name: "RegwatchFleetSim",
            dependencies: ["RegwatchShared", "RegwatchAgent", "CZeroMQ"],
            path: "Sources/FleetSim"
        ),

        .target(
            name: "RegwatchCLI",
            dependencies: [
                "RegwatchShared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/CLI"
        ),

        // Thin executables
        .executableTarget(
            name: "regwatch-agent",
            dependencies: [
                "RegwatchAgent", "RegwatchShared", "RegwatchCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The link order of its hot functions (`make release`, scripts/agent-order.sh).
            exclude: ["hot-functions.order"]
        ),
        .executableTarget(
            name: "regwatch-aggregator",
            dependencies: [
                "RegwatchAggregator", "RegwatchShared", "RegwatchCLI",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "regwatch-fleetsim",
            dependencies: [
                "RegwatchFleetSim", "RegwatchAgent", "RegwatchShared", "RegwatchCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "regwatch-bench",
            dependencies: ["RegwatchShared", "CZeroMQ", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/regwatch-bench"
        ),
        .executableTarget(
            name: "regwatch-correlation-bench",
            dependencies: ["RegwatchShared", "RegwatchAggregator"],
            path: "Benchmarks/correlation-bench"
        ),
        .target(name: "RegwatchBenchSupport", dependencies: ["RegwatchShared"], path: "Benchmarks/bench-support"),
        .executableTarget(
            name: "regwatch-ha-bench",
            dependencies: [
                "RegwatchShared", "RegwatchAggregator", "RegwatchBenchSupport", "RegwatchTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ha-bench"
        ),
        .executableTarget(
            name: "regwatch-ingest-bench",
            dependencies: [
                "RegwatchShared", "RegwatchAggregator", "RegwatchBenchSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ingest-bench"
        ),

        // Test support: real components (registries, certificates) for the test targets.
        .target(name: "RegwatchTestSupport", path: "Sources/TestSupport", resources: [.copy("Resources/faultproxy.py"), .copy("Resources/tokenserver.py")]),

        .executableTarget(
            name: "regwatch-probe-bench",
            dependencies: ["RegwatchTestSupport"],
            path: "Benchmarks/probe-bench"
        ),

        // Tests
        .testTarget(
            name: "SharedTests",
            dependencies: [
                "RegwatchShared", "CZeroMQ", "RegwatchTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "AgentTests", dependencies: ["RegwatchAgent", "RegwatchShared", "CCurl", "RegwatchTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FleetSimTests", dependencies: ["RegwatchFleetSim", "RegwatchShared"]),
        .testTarget(name: "AggregatorTests", dependencies: ["RegwatchAggregator", "RegwatchShared", "RegwatchTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                                                         .product(name: "PostgresNIO", package: "postgres-nio")]),
        // Runs the built executables; `swift build --build-tests` builds them first.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "regwatch-agent", "regwatch-aggregator", "regwatch-fleetsim", "RegwatchTestSupport", "RegwatchShared", "RegwatchAgent", "CZeroMQ",
                .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["browser.py"]  // run by /usr/bin/python3 from its #filePath, not compiled or bundled
        ),
    ]
)
