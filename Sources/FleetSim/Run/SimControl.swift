import Synchronization

/// What the runner tells every shard: whether faults are on, whether new events are made, an epoch that
/// marks "from now on" for reconnect timing, and stop.
final class SimControl: Sendable {
    let faultsOn = Atomic<Bool>(false)
    let eventsOn = Atomic<Bool>(true)
    let epoch = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
}
