import CZeroMQ
import RegwatchShared

/// The agents of one process: its share of the fleet on ``SimSettings/threads`` shards, one libzmq context.
final class FleetSlice: Sendable {
    let shards: [AgentShard]
    private let threads: [IOThread]
    private let context: ZMQContext
    let control: SimControl

    /// - Parameter agents: global index and identity of every agent this process plays.
    init(settings s: SimSettings, agents: [(index: Int, identity: SimIdentity)], verifier: CommandVerifier, control: SimControl, startMs: Int64) throws(SimError) {
        self.control = control
        let context = ZMQContext(ioThreads: 1)
        // A DEALER and its monitor per agent, twice that while enrolled agents' joining sockets wait to be
        // reaped; libzmq's default is 1,023 sockets and it refuses more than its limit.
        let needed = Int32(4 * agents.count + 64)
        guard zmq_ctx_set(context.handle, ZMQ_MAX_SOCKETS, min(zmq_ctx_get(context.handle, ZMQ_SOCKET_LIMIT), needed)) == 0,
              zmq_ctx_get(context.handle, ZMQ_MAX_SOCKETS) >= needed else {
            context.terminate()
            throw .badArgument("--agents", "\(agents.count) agents in one process need \(needed) sockets; this libzmq allows \(zmq_ctx_get(context.handle, ZMQ_SOCKET_LIMIT))")
        }
        var byShard: [[SimAgent]] = Array(repeating: [], count: s.threads)
        for (n, a) in agents.enumerated() {
            let shard = n % s.threads
            byShard[shard].append(SimAgent(index: a.index, slot: byShard[shard].count, identity: a.identity, verifier: verifier))
        }
        var shards: [AgentShard] = []
        do {
            for agents in byShard { shards.append(try AgentShard(settings: s, context: context, control: control, agents: agents, startMs: startMs)) }
        } catch {
            context.terminate()
            throw error
        }
        self.shards = shards
        self.context = context
        threads = shards.enumerated().map { i, shard in IOThread(name: "fleetsim-\(i)") { shard.run() } }
    }

    func stats() -> ShardStats {
        var t = ShardStats(count: 0)
        for shard in shards { shard.stats.withLock { t.add($0) } }
        return t
    }

    /// Closes every socket and waits for the shard threads; the final figures include who is enrolled.
    func stop() async -> ShardStats {
        control.stopping.store(true, ordering: .relaxed)
        for t in threads { await t.finished() }
        context.terminate()
        return stats()
    }
}
