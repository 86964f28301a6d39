import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A detached OS thread for work that blocks (libzmq polls, curl's multi loop, getaddrinfo), so it never
/// occupies a thread of Swift's cooperative pool. Foundation's `Thread` would do, but the agent does not
/// load full Foundation.
public enum OSThread {
    public static func detach(name: String, stackSize: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body {
            rw_set_thread_name(String(name.prefix(15)))
            body()
        }).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, stackSize)
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        pthread_attr_destroy(&attributes)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }

    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
