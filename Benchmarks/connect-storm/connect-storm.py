#!/usr/bin/python3
# N CURVE DEALERs, each with its own new key, connect at once to a running regwatch-aggregator (run by
# Benchmarks/connect-storm/run.sh). Unenrolled keys are admitted as joining peers, so the handshake is the
# whole cost measured: the figure is when the aggregator's ZAP handler had admitted 50/90/99/100 % of them
# (regwatch_zap_decisions_total, polled every 50 ms). The sockets are spread over PROCESSES client processes
# (each socket costs the client about two file descriptors). With AGGREGATOR_PID, the connections are then
# held for HOLD seconds and the aggregator's resident memory per connection and its CPU while they only
# exchange heartbeats (each pings like an agent) are printed too.
#   connect-storm.py ENDPOINT SERVER_PUB_FILE METRICS_URL N [PROCESSES [AGGREGATOR_PID HOLD]]
import os, re, resource, sys, time, urllib.request
import zmq

endpoint, server_pub_file, metrics_url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
processes = int(sys.argv[5]) if len(sys.argv) > 5 else 1
aggregator = int(sys.argv[6]) if len(sys.argv) > 6 else None
hold = float(sys.argv[7]) if len(sys.argv) > 7 else 0
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
server_key = re.search(r'public-key = "([^"]+)"', open(server_pub_file).read()).group(1).encode()


def zap_total():
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(m) for m in re.findall(r'^regwatch_zap_decisions_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def client(count, release):
    """Opens `count` DEALERs, then waits until the parent closes `release`."""
    ctx = zmq.Context(io_threads=1)
    ctx.set(zmq.MAX_SOCKETS, 65536)
    socks = []
    for _ in range(count):
        pub, sec = zmq.curve_keypair()
        s = ctx.socket(zmq.DEALER)
        s.curve_serverkey = server_key
        s.curve_publickey = pub
        s.curve_secretkey = sec
        s.setsockopt(zmq.LINGER, 0)
        # Like an agent: a ping every 5 s with no TTL, a silent aggregator dropped after 15 s.
        s.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        s.setsockopt(zmq.ROUTING_ID, b"?" + pub)
        s.connect(endpoint)
        socks.append(s)
    os.read(release, 1)  # EOF when the parent is done
    for s in socks:
        s.close()
    ctx.term()
    os._exit(0)


base = zap_total()
rss_before = rss_kib(aggregator) if aggregator else 0
release_r, release_w = os.pipe()
children = []
t0 = time.time()
for i in range(processes):
    count = n // processes + (1 if i < n % processes else 0)
    pid = os.fork()
    if pid == 0:
        os.close(release_w)
        client(count, release_r)
    children.append(pid)
os.close(release_r)
marks = {}
done = 0
while True:
    done = zap_total() - base
    elapsed = time.time() - t0
    for frac in (0.5, 0.9, 0.99, 1.0):
        if frac not in marks and done >= frac * n:
            marks[frac] = elapsed
    if done >= n or elapsed > 120:
        break
    time.sleep(0.05)
line = f"n={n} in {processes} client process(es): admitted {int(done)}/{n}; " + " ".join(
    f"{int(f * 100)}%={t:.2f}s" for f, t in sorted(marks.items()))
if aggregator and hold > 0:
    time.sleep(5)  # handshakes settled
    rss_held = rss_kib(aggregator)
    z0, c0, w0 = zap_total(), cpu_ticks(aggregator), time.time()
    time.sleep(hold)
    cpu = (cpu_ticks(aggregator) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - w0) * 100
    again = zap_total() - z0
    line += (f"; aggregator RSS {rss_before / 1024:.1f} -> {rss_held / 1024:.1f} MiB, "
             f"{(rss_held - rss_before) * 1024 / max(done, 1) / 1024:.1f} KiB per connection; "
             f"{cpu:.2f}% of a core over {hold:.0f} s of heartbeats only, {int(again)} handshakes again meanwhile")
print(line, flush=True)
os.close(release_w)
for pid in children:
    os.waitpid(pid, 0)
