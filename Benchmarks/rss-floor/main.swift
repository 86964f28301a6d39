// RSS floor for the agent: a Swift program without Foundation that opens a CURVE DEALER (libzmq) and makes
// `rounds` GETs of every URL (libcurl), then reports its resident memory once idle.
//   rss-floor CA_FILE ROUNDS URL...
#if canImport(Glibc)
import Glibc
#endif

@_silgen_name("floor_get") func floorGet(_ url: UnsafePointer<CChar>, _ ca: UnsafePointer<CChar>?) -> Int
@_silgen_name("floor_dealer") func floorDealer(_ endpoint: UnsafePointer<CChar>)

let args = CommandLine.arguments
guard args.count >= 4, let rounds = Int(args[2]) else {
    fputs("usage: rss-floor CA_FILE ROUNDS URL...\n", stderr)
    exit(2)
}
floorDealer("tcp://127.0.0.1:1")
var failures = 0
for _ in 0..<rounds {
    for url in args.dropFirst(3) where floorGet(url, args[1]) <= 0 { failures += 1 }
}
sleep(2)
let fd = open("/proc/self/status", O_RDONLY)
var buffer = [UInt8](repeating: 0, count: 8192)
let n = read(fd, &buffer, buffer.count)
close(fd)
var rss = 0, anon = 0
for line in String(decoding: buffer[0..<max(n, 0)], as: UTF8.self).split(separator: "\n") {
    let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    if line.hasPrefix("VmRSS:") { rss = kb }
    if line.hasPrefix("RssAnon:") { anon = kb }
}
print("\(rss) \(anon) \(failures)")
