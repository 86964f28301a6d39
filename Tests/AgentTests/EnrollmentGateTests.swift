import RegwatchAgent
import RegwatchTestSupport
import Synchronization
import Testing

/// The gate between joining and reporting: waiters sleep until an admission instead of polling for it.
@Suite("Enrollment gate")
struct EnrollmentGateTests {
    @Test("waitForAdmission sleeps until the next admit, returns the count, and is at once when one already happened")
    func admissions() async throws {
        let gate = EnrollmentGate(admitted: false)
        let returned = Mutex<Int?>(nil)
        let waiter = Task {
            let n = await gate.waitForAdmission(after: 0)
            returned.withLock { $0 = n }
            return n
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(returned.withLock { $0 } == nil, "returned before any admission")
        gate.admit()
        #expect(try await withDeadline(5, "the admission waiter") { await waiter.value } == 1)
        // Already past 0: at once. Past 1: waits for the second admission.
        #expect(try await withDeadline(5, "the admission waiter") { await gate.waitForAdmission(after: 0) } == 1)
        gate.close()
        #expect(!gate.isAdmitted)
        let second = Task { await gate.waitForAdmission(after: 1) }
        try await Task.sleep(for: .milliseconds(100))
        gate.admit()
        #expect(try await withDeadline(5, "the admission waiter") { await second.value } == 2)
    }

    @Test("a cancelled waiter returns without an admission")
    func cancelled() async throws {
        let gate = EnrollmentGate(admitted: false)
        let waiter = Task { await gate.waitForAdmission(after: 0) }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(try await withDeadline(5, "the admission waiter") { await waiter.value } == 0)
        #expect(!gate.isAdmitted)
    }
}
