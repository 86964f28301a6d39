import Logging
import RegwatchShared
import ServiceLifecycle

/// Reads what the aggregator sends this agent and routes it by an explicit allowlist: event
/// acknowledgements to the ``EventPublisher``, signed failover commands to the
/// ``FailoverCommandService`` (which trusts nothing about them), join and rotate answers to the
/// ``JoinService``. Anything else is counted and logged by the dispatcher.
public struct AgentInbox: Service {
    let client: DealerClient
    let dispatcher: MessageDispatcher

    public init(client: DealerClient, publisher: EventPublisher, failover: FailoverCommandService? = nil, join: JoinService? = nil, logger: Logger) {
        self.client = client
        var handlers: [MessageType: MessageDispatcher.Handler] = [
            .eventsAck: { message, _ in
                if case .eventsAck(let env) = message { publisher.acknowledge(env.body.seqs) }
            },
        ]
        if let failover {
            handlers[.failoverCommand] = { message, _ in
                if case .failoverCommand(let env) = message { failover.submit(env.body) }
            }
        }
        if let join {
            handlers[.joinResult] = { message, _ in
                if case .joinResult(let env) = message { join.receive(env.body) }
            }
            handlers[.rotateResult] = { message, _ in
                if case .rotateResult(let env) = message { join.receive(env.body) }
            }
        }
        dispatcher = MessageDispatcher(handlers: handlers, logger: logger)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await message in client.inbound {
                dispatcher.dispatch(message.payload, authenticatedPeer: nil)
            }
        }
    }
}
