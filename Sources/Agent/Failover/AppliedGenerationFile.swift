import FoundationEssentials
import RegwatchShared

/// The highest failover generation this agent has applied, and the aggregator term (epoch) that issued
/// it, in `stateDir/applied-generation`.
///
/// Written atomically with fsync before the ack goes out, so a command replayed after a crash or a
/// restart is recognised as old. A missing file means 0 (never applied); an unreadable one is an error,
/// never silently 0, which would reopen the door to replays.
public struct AppliedGenerationFile: Sendable {
    public let path: String

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public init(stateDir: String) {
        path = stateDir + "/applied-generation"
    }

    /// The applied generation.
    public func read() throws(Failure) -> UInt64 {
        try readVersion().generation
    }

    /// The applied generation and the term that issued it: `GENERATION [EPOCH]` (a file of an agent
    /// that knew no terms holds the generation alone: epoch 0).
    public func readVersion() throws(Failure) -> CommandVersion {
        guard FileManager.default.fileExists(atPath: path) else { return CommandVersion(generation: 0) }
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(path: path, reason: "cannot read") }
        let text = String(decoding: data, as: UTF8.self).trimmed()
        let fields = text.split(separator: " ")
        guard (1...2).contains(fields.count), let g = UInt64(fields[0]), let e = fields.count == 2 ? UInt64(fields[1]) : 0 else {
            throw Failure(path: path, reason: "not a generation number: \"\(text.prefix(40))\"")
        }
        return CommandVersion(epoch: e, generation: g)
    }

    public func write(_ generation: UInt64, epoch: UInt64 = 0) throws(Failure) {
        do {
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        } catch {
            throw Failure(path: path, reason: "cannot create the state directory: \(String(describing: error))")
        }
        do throws(AtomicFile.WriteError) {
            try AtomicFile.write(Array((epoch == 0 ? "\(generation)\n" : "\(generation) \(epoch)\n").utf8), to: path, mode: 0o600)
        } catch {
            throw Failure(path: path, reason: error.reason)
        }
    }
}
