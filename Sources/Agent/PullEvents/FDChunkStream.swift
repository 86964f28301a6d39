import FoundationEssentials
import RegwatchShared
#if canImport(Glibc)
import Glibc
#endif

/// Reads a long-lived stream (a socket, a pipe from `journalctl -f`) on its own OS thread, so a read
/// that blocks for hours never holds a thread of Swift's cooperative pool, and hands the bytes over as
/// an async sequence. Cancelling the consumer wakes the thread through a pipe; the stream ends at EOF
/// or on a read error. The file descriptor is closed when the thread ends.
enum FDChunkStream {
    static func chunks(fd: Int32, name: String) -> AsyncStream<[UInt8]> {
        var wake: [Int32] = [-1, -1]
        _ = makePipe(&wake, nonBlocking: true)
        let wakeRead = wake[0], wakeWrite = wake[1]
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(256))
        continuation.onTermination = { _ in
            var one: UInt8 = 1
            _ = write(wakeWrite, &one, 1)
        }
        _ = IOThread(name: name) {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            loop: while true {
                fds[0].revents = 0
                fds[1].revents = 0
                let r = poll(&fds, 2, -1)
                if r < 0 { if errno == EINTR { continue }; break }
                if fds[1].revents != 0 { break }
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; break loop }
                if n == 0 { break }
                continuation.yield(Array(buffer[0..<n]))
            }
            close(fd)
            close(wakeRead)
            continuation.finish()
            close(wakeWrite)
        }
        return stream
    }
}

/// Splits a byte stream into lines (LF or CRLF); a line longer than `maxLine` is cut, not buffered forever.
struct LineSplitter {
    var pending: [UInt8] = []
    let maxLine: Int

    init(maxLine: Int = 64 * 1024) { self.maxLine = maxLine }

    mutating func feed(_ bytes: some Collection<UInt8>) -> [String] {
        var lines: [String] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else if pending.count < maxLine {
                pending.append(b)
            }
        }
        return lines
    }
}

/// pipe(2) with close-on-exec (and optionally non-blocking) set; Glibc's Swift overlay lacks pipe2.
func makePipe(_ fds: inout [Int32], nonBlocking: Bool = false) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }
    return true
}
