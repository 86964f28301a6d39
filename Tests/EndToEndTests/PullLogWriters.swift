import Foundation
import Synchronization

/// Appends kubelet pull-failure lines, each with an image of its own (`registry.test:5000/ID/app:N`),
/// to every agent's log until stopped, so a test can check each one reached the database exactly once.
///
/// On a thread of its own: a task of the cooperative pool may not run at all while other suites block
/// its threads (a CI run once wrote nothing during a whole test).
final class PullLogWriters: Sendable {
    let ids: [String]
    let path: @Sendable (String) -> String
    let linesPerTick: Int
    let tick: Duration
    private struct State {
        /// Lines written per agent.
        var counts: [String: Int] = [:]
        var stopped = false
    }
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - path: the log file of an agent id.
    ///   - linesPerTick, tick: each agent's log gets `linesPerTick` lines every `tick`.
    init(ids: [String], linesPerTick: Int = 5, tick: Duration = .milliseconds(20), path: @escaping @Sendable (String) -> String) {
        self.ids = ids
        self.path = path
        self.linesPerTick = linesPerTick
        self.tick = tick
    }

    /// Lines written per agent so far.
    var counts: [String: Int] { state.withLock { $0.counts } }

    /// The images written to `id`'s log.
    func images(_ id: String) -> Set<String> {
        Set((0..<(counts[id] ?? 0)).map { Self.image(id, $0) })
    }

    static func image(_ id: String, _ n: Int) -> String { "registry.test:5000/\(id)/app:\(n)" }

    func start() {
        let handles = ids.compactMap { FileHandle(forWritingAtPath: path($0)) }
        precondition(handles.count == ids.count, "every log must exist before the writers start")
        Thread.detachNewThread { [self] in
            while !state.withLock({ $0.stopped }) {
                for (id, handle) in zip(ids, handles) {
                    let first = state.withLock { s -> Int in
                        defer { s.counts[id, default: 0] += linesPerTick }
                        return s.counts[id, default: 0]
                    }
                    var text = ""
                    for n in first..<(first + linesPerTick) {
                        text += "I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"\(Self.image(id, n))\\\": rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit\"\n"
                    }
                    handle.seekToEndOfFile()
                    handle.write(Data(text.utf8))
                }
                Thread.sleep(forTimeInterval: tick.seconds)
            }
            for h in handles { try? h.close() }
            finished.signal()
        }
    }

    /// Stops writing and returns once the last line is written.
    func stop() {
        state.withLock { $0.stopped = true }
        finished.wait()
    }
}
