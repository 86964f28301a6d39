import CZeroMQ
import Synchronization

/// A socket monitor: libzmq publishes connection events on an inproc PAIR that we read on the I/O thread.
package final class ZMQMonitor: @unchecked Sendable {
    package let socket: ZMQSocket
    private static let counter = Atomic<Int>(0)

    package init(context: ZMQContext, watching target: ZMQSocket) throws(TransportError) {
        let address = "inproc://regwatch-monitor-\(Self.counter.wrappingAdd(1, ordering: .relaxed).newValue)"
        // The reader first: once `target` is monitored, a monitor without a reader is not safe to stop
        // (libzmq sends its "stopped" event without ZMQ_DONTWAIT, and that send would never return).
        socket = try ZMQSocket(context: context, type: ZMQ_PAIR)
        try socket.set(ZMQ_LINGER, Int32(0))
        guard zmq_socket_monitor(target.handle, address, ZMQ_EVENT_ALL) == 0 else { throw .last("zmq_socket_monitor") }
        try socket.connect(address)
    }

    /// Stops monitoring `target`. Call it before closing the monitor or the target: libzmq sends events
    /// to the monitor without `ZMQ_DONTWAIT`, so an event for a monitor nobody reads any more blocks the
    /// context's I/O thread, and with it every connection of the context.
    package static func stop(watching target: ZMQSocket) {
        _ = zmq_socket_monitor(target.handle, nil, 0)
    }

    /// The next monitor event, if one is waiting.
    package func next() -> RawEvent? {
        guard let received = try? socket.receive(), received.frames.count >= 2, received.frames[0].count >= 6 else { return nil }
        let f = received.frames[0]
        let event = UInt16(f[0]) | UInt16(f[1]) << 8
        let value = UInt32(f[2]) | UInt32(f[3]) << 8 | UInt32(f[4]) << 16 | UInt32(f[5]) << 24
        return RawEvent(event: Int32(event), value: value, address: String(decoding: received.frames[1], as: UTF8.self))
    }

    package struct RawEvent {
        package var event: Int32
        package var value: UInt32
        package var address: String
    }
}
