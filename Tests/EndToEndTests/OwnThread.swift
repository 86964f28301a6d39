import Foundation
import Testing

/// Runs each test of a suite on a thread of its own instead of Swift's cooperative pool.
///
/// End-to-end tests block: they wait for processes, poll files and sleep between steps. On the cooperative
/// pool (one thread per core, two on CI) two such tests starve every async test in the process; a
/// heartbeat test once saw a 1 s timeout reported after 10 s. A dedicated executor thread per test keeps
/// the pool free for the tests that measure time.
struct OwnThreadTrait: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Suites get a scope too; only a test case needs the thread.
        guard testCase != nil else { return try await function() }
        let executor = ThreadExecutor(name: test.name)
        defer { executor.stop() }
        try await withTaskExecutorPreference(executor) { try await function() }
    }
}

extension Trait where Self == OwnThreadTrait {
    /// Each test case runs on a thread of its own (see `OwnThreadTrait`).
    static var ownThread: Self { OwnThreadTrait() }
}

/// A task executor backed by one thread that runs its jobs in order.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    init(name: String) {
        // The thread holds the executor until `stop()` lets it drain and exit.
        let thread = Thread { self.run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread finish the jobs already queued and exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        let me = asUnownedTaskExecutor()
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty { condition.unlock(); return }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: me)
        }
    }
}

extension Tag {
    /// Needs root: network namespaces, nftables, bind mounts or a dockerd. `make test` checks for root;
    /// `make test-unprivileged` runs everything else (docs/development.md).
    @Tag static var root: Self
}
