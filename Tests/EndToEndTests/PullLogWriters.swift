import Foundation

/// Appends kubelet pull-failure lines, each with an image of its own (`registry.test:5000/ID/app:N`),
/// to every agent's log until stopped, so a test can check each one reached the database exactly once.
actor PullLogWriters {
    let ids: [String]
    let path: @Sendable (String) -> String
    let linesPerTick: Int
    let tick: Duration
    /// Lines written per agent.
    var counts: [String: Int] = [:]
    var stopped = false

    /// - Parameters:
    ///   - path: the log file of an agent id.
    ///   - linesPerTick, tick: each agent's log gets `linesPerTick` lines every `tick`.
    init(ids: [String], linesPerTick: Int = 5, tick: Duration = .milliseconds(20), path: @escaping @Sendable (String) -> String) {
        self.ids = ids
        self.path = path
        self.linesPerTick = linesPerTick
        self.tick = tick
    }

    func stop() { stopped = true }

    /// The images written to `id`'s log.
    func images(_ id: String) -> Set<String> {
        Set((0..<counts[id, default: 0]).map { Self.image(id, $0) })
    }

    static func image(_ id: String, _ n: Int) -> String { "registry.test:5000/\(id)/app:\(n)" }

    func run() async {
        let handles = ids.compactMap { FileHandle(forWritingAtPath: path($0)) }
        precondition(handles.count == ids.count, "every log must exist before the writers start")
        while !stopped {
            for (id, handle) in zip(ids, handles) {
                var text = ""
                for _ in 0..<linesPerTick {
                    let n = counts[id, default: 0]
                    counts[id] = n + 1
                    text += "I1129 01:02:05.123456 1234 event.go:307] \"Event occurred\" reason=\"Failed\" message=\"Failed to pull image \\\"\(Self.image(id, n))\\\": rpc error: code = Unknown desc = 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit\"\n"
                }
                handle.seekToEndOfFile()
                handle.write(Data(text.utf8))
            }
            try? await Task.sleep(for: tick)
        }
        for h in handles { try? h.close() }
    }
}
