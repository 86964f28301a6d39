// swift-tools-version: 6.1
import PackageDescription

/// libFuzzer targets for regwatch's parsers and decoders (docs/development.md, "Fuzzing").
///
/// A package of its own so that `-sanitize=fuzzer,address` and `-parse-as-library` (libFuzzer brings
/// `main`) apply to these executables only; `scripts/fuzz.sh` builds and runs them.
let targets = [
    "FuzzWireDecode", "FuzzFastReportDecoder", "FuzzAgentConfig", "FuzzDaemonJSON",
    "FuzzContainerdHosts", "FuzzRegistriesConf", "FuzzPullLog", "FuzzClassifier",
]

let package = Package(
    name: "regwatch-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "regwatch", path: "..")],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
    ] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "RegwatchShared", package: "regwatch"),
                .product(name: "RegwatchAgent", package: "regwatch"),
            ],
            path: "Sources/\(name)"
        )
    }
)
