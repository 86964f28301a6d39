// regwatch-bench: DEALER -> ROUTER throughput through regwatch's transport layer and through a minimal
// raw-libzmq loop, measured in the same run so the ratio holds on any machine.
import CZeroMQ
import Foundation
import Logging
import RegwatchShared

struct Case {
    var name: String
    var size: Int
    var curve: Bool
    var count: Int
}

let quick = CommandLine.arguments.contains("--quick")
let rounds = quick ? 1 : 5
let allCases = [
    Case(name: "200 B plain", size: 200, curve: false, count: quick ? 50_000 : 300_000),
    Case(name: "2 KiB plain", size: 2048, curve: false, count: quick ? 30_000 : 150_000),
    Case(name: "200 B CURVE", size: 200, curve: true, count: quick ? 30_000 : 150_000),
    Case(name: "2 KiB CURVE", size: 2048, curve: true, count: quick ? 20_000 : 80_000),
]
let cases = allCases.filter { c in ProcessInfo.processInfo.environment["BENCH_CASE"].map { c.name.hasPrefix($0) } ?? true }
let hwm: Int32 = 10_000

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func check(_ rc: Int32, _ what: String) {
    if rc != 0 { fatalError("\(what): \(String(cString: zmq_strerror(zmq_errno())))") }
}

func setInt(_ s: UnsafeMutableRawPointer, _ opt: Int32, _ v: Int32) {
    var v = v
    check(zmq_setsockopt(s, opt, &v, 4), "setsockopt \(opt)")
}

func setString(_ s: UnsafeMutableRawPointer, _ opt: Int32, _ v: String) {
    let bytes = Array(v.utf8)
    check(zmq_setsockopt(s, opt, bytes, bytes.count), "setsockopt \(opt)")
}

/// The reference: a ROUTER and a DEALER in separate contexts, a blocking sender thread and a blocking
/// receiver loop, nothing else.
func rawRun(_ c: Case, server: CurveKeyPair, client: CurveKeyPair) -> Double {
    let sctx = zmq_ctx_new()!, cctx = zmq_ctx_new()!
    let router = zmq_socket(sctx, ZMQ_ROUTER)!
    setInt(router, ZMQ_RCVHWM, hwm)
    setInt(router, ZMQ_LINGER, 0)
    if c.curve {
        setInt(router, ZMQ_CURVE_SERVER, 1)
        setString(router, ZMQ_CURVE_SECRETKEY, server.secretForBenchmark)
    }
    check(zmq_bind(router, "tcp://127.0.0.1:*"), "bind")
    var buf = [CChar](repeating: 0, count: 256)
    var len = buf.count
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, &buf, &len)
    let endpoint = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let dealer = zmq_socket(cctx, ZMQ_DEALER)!
    setInt(dealer, ZMQ_SNDHWM, hwm)
    setInt(dealer, ZMQ_LINGER, 0)
    setString(dealer, ZMQ_ROUTING_ID, "bench")
    if c.curve {
        setString(dealer, ZMQ_CURVE_SERVERKEY, server.publicKey.z85)
        setString(dealer, ZMQ_CURVE_PUBLICKEY, client.publicKey.z85)
        setString(dealer, ZMQ_CURVE_SECRETKEY, client.secretForBenchmark)
    }
    check(zmq_connect(dealer, endpoint), "connect")
    let payload = [UInt8](repeating: 0x61, count: c.size)
    let count = c.count
    let dealerBox = UnsafeSendable(dealer)
    let sender = Thread {
        for _ in 0..<count { _ = zmq_send(dealerBox.value, payload, payload.count, 0) }
    }
    var msg = zmq_msg_t()
    zmq_msg_init(&msg)
    let start = now()
    sender.start()
    var received = 0
    while received < count {
        zmq_msg_recv(&msg, router, 0) // routing id
        zmq_msg_recv(&msg, router, 0) // payload
        received += 1
    }
    let elapsed = now() - start
    zmq_msg_close(&msg)
    zmq_close(dealer)
    zmq_close(router)
    zmq_ctx_term(cctx)
    zmq_ctx_term(sctx)
    return Double(count) / elapsed
}

struct AdmitAll: ZAPAuthenticator {
    func authenticate(_ request: ZAPRequest) -> ZAPDecision { .allow(hostID: "bench") }
}

/// The same traffic through RouterServer/DealerClient: async sends into the outbox, I/O threads, ZAP,
/// and consumption through the `inbound` async sequence.
func layerRun(_ c: Case, server: CurveKeyPair, client: CurveKeyPair) async throws -> Double {
    var limits = TransportLimits()
    limits.sendHighWaterMark = hwm
    limits.receiveHighWaterMark = hwm
    let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    let router = RouterServer(
        configuration: .init(endpoint: "tcp://127.0.0.1:*", security: c.curve ? .curve(serverKeys: server) : .insecure, limits: limits),
        authenticator: AdmitAll(), logger: logger
    )
    let endpoint = try router.start()
    let dealer = DealerClient(
        configuration: .init(endpoint: endpoint, hostID: "bench", security: c.curve ? .curve(serverKey: server.publicKey, clientKeys: client) : .insecure, limits: limits),
        logger: logger
    )
    try dealer.start()
    let payload = [UInt8](repeating: 0x61, count: c.size)
    let count = c.count
    let start = now()
    let producer = Task {
        // trySend never suspends; only a full outbox makes the producer wait.
        for _ in 0..<count where !dealer.trySend(payload) { try await dealer.send(payload) }
    }
    // Consumed in batches, as the aggregator's ingest does (one transaction per batch).
    var received = 0
    for await batch in router.inbound.batched {
        received += batch.count
        if received >= count { break }
    }
    let elapsed = now() - start
    if ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil {
        let st = router.statistics
        print("  \(c.name): \(st.received) messages in \(st.inboundBatches) batches")
    }
    try await producer.value
    await dealer.shutdown()
    await router.shutdown()
    return Double(count) / elapsed
}

struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

let serverKeys = try CurveKeyPair.generate()
let clientKeys = try CurveKeyPair.generate()
print("regwatch-bench: DEALER -> ROUTER over tcp://127.0.0.1, libzmq \(ZMQContext.version); \(rounds) alternating raw/regwatch round(s) per case, medians")
print("")
func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s[s.count / 2]
}
let header = ["case", "messages", "raw libzmq msg/s", "regwatch msg/s", "ratio"]
var rows: [[String]] = []
var worst = Double.infinity
let only = ProcessInfo.processInfo.environment["BENCH_ONLY"]
for c in cases {
    // Raw and regwatch runs alternate so that machine noise hits both alike; the ratio is the median of pairs.
    var raws: [Double] = [], layers: [Double] = [], ratios: [Double] = []
    for _ in 0..<rounds {
        let raw = only == "layer" ? 0 : rawRun(c, server: serverKeys, client: clientKeys)
        let layer = only == "raw" ? 0 : try await layerRun(c, server: serverKeys, client: clientKeys)
        raws.append(raw)
        layers.append(layer)
        if raw > 0 { ratios.append(layer / raw) }
    }
    let ratio = median(ratios)
    worst = min(worst, ratio)
    rows.append([c.name, "\(c.count)", String(format: "%.0f", median(raws)), String(format: "%.0f", median(layers)), String(format: "%.2f", ratio)])
}
let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
for row in [header] + rows {
    print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  "))
}
print("")
print(String(format: "lowest ratio %.2f (goal >= 0.80)", worst))
