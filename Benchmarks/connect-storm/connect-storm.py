#!/usr/bin/python3
# N CURVE DEALERs, each with its own new key, connect at once to a running regwatch-aggregator (run by
# Benchmarks/connect-storm/run.sh). Unenrolled keys are admitted as joining peers, so the handshake is the
# whole cost measured: the figure is when the aggregator's ZAP handler had admitted 50/90/99/100 % of them
# (regwatch_zap_decisions_total, polled every 50 ms).
#   connect-storm.py ENDPOINT SERVER_PUB_FILE METRICS_URL N
import sys, time, urllib.request, re, resource, zmq
endpoint, server_pub_file, metrics_url, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
server_key = re.search(r'public-key = "([^"]+)"', open(server_pub_file).read()).group(1).encode()
def zap_total():
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(m) for m in re.findall(r'^regwatch_zap_decisions_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))
ctx = zmq.Context(io_threads=2)
ctx.set(zmq.MAX_SOCKETS, 65536)
keys = [zmq.curve_keypair() for _ in range(n)]
base = zap_total()
socks = []
t0 = time.time()
for pub, sec in keys:
    s = ctx.socket(zmq.DEALER)
    s.curve_serverkey = server_key; s.curve_publickey = pub; s.curve_secretkey = sec
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, b"?" + pub)
    s.connect(endpoint)
    socks.append(s)
t_connected = time.time() - t0
marks = {}
while True:
    done = zap_total() - base
    el = time.time() - t0
    for frac in (0.5, 0.9, 0.99, 1.0):
        if frac not in marks and done >= frac * n: marks[frac] = el
    if done >= n or el > 120: break
    time.sleep(0.05)
print(f"n={n} connect calls {t_connected:.2f}s admitted {int(done)}/{n}; " + " ".join(f"{int(f*100)}%={t:.2f}s" for f, t in sorted(marks.items())))
for s in socks: s.close()
ctx.term()
