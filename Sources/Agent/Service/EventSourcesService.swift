import Logging
import RegwatchShared
import ServiceLifecycle

/// Runs every configured pull-event source side by side until shutdown. A source never ends the
/// agent: each one handles its own absence and failures (``PullEventSource``).
public struct EventSourcesService: Service {
    let sources: [any PullEventSource]
    let sink: PullEventSink

    public init(sources: [any PullEventSource], sink: PullEventSink) {
        self.sources = sources
        self.sink = sink
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for source in sources {
                    group.addTask { await source.run(into: sink) }
                }
                await group.waitForAll()
            }
        }
        // With no source configured (or all ended) stay up until shutdown: the group treats an early
        // return as a failure.
        try? await gracefulShutdown()
        sink.finish()
    }
}
