import Logging
import RegwatchShared
import ServiceLifecycle

/// Reads what the aggregator sends this agent and routes it by an explicit allowlist: event
/// acknowledgements to the ``EventPublisher``. Anything else is counted and logged by the dispatcher.
public struct AgentInbox: Service {
    let client: DealerClient
    let dispatcher: MessageDispatcher

    public init(client: DealerClient, publisher: EventPublisher, logger: Logger) {
        self.client = client
        dispatcher = MessageDispatcher(handlers: [
            .eventsAck: { message, _ in
                if case .eventsAck(let env) = message { publisher.acknowledge(env.body.seqs) }
            },
        ], logger: logger)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await message in client.inbound {
                dispatcher.dispatch(message.payload, authenticatedPeer: nil)
            }
        }
    }
}
