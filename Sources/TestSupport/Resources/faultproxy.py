#!/usr/bin/python3
"""A fault-injecting HTTP proxy in front of a real registry, for regwatch's tests.

The CNCF registry has no rate limits and never misbehaves on purpose; this sits in front of one and
does what Docker Hub, a broken load balancer or a slow network would do. Standard library only.

  faultproxy.py PORT UPSTREAM MODE
  MODE: pass | headroom | ratelimit | abuse429 | denied | error503 | html | slow:SECONDS
"""
import http.server
import socketserver
import sys
import time
import urllib.error
import urllib.request

PORT, UPSTREAM, MODE = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
LIMIT = {"ratelimit-limit": "100;w=21600", "docker-ratelimit-source": "203.0.113.7"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        manifest = "/manifests/" in self.path
        if MODE.startswith("slow:"):
            time.sleep(float(MODE.split(":", 1)[1]))
        if MODE == "error503":
            return self.reply(503, {"Content-Type": "text/plain"}, b"Service Unavailable")
        if MODE == "html":
            return self.reply(200, {"Content-Type": "text/html"}, b"<html><body>Please log in to the guest network</body></html>")
        if MODE == "denied" and manifest:
            body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
            return self.reply(403, {"Content-Type": "application/json"}, body)
        if MODE == "abuse429" and manifest:
            return self.reply(429, {"Content-Type": "text/plain"}, b"Too Many Requests")
        if MODE == "ratelimit" and manifest:
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit."}]}'
            headers = {"Content-Type": "application/json", "ratelimit-remaining": "0;w=21600", **LIMIT}
            return self.reply(429, headers, body)
        request = urllib.request.Request(UPSTREAM + self.path, method=self.command, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, headers, body = r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, dict(e.headers.items()), e.read()
        headers.pop("Content-Length", None)
        headers.pop("Transfer-Encoding", None)
        headers.pop("Connection", None)
        if manifest and MODE in ("headroom", "ratelimit"):
            headers.update({"ratelimit-remaining": "76;w=21600", **LIMIT})
        self.reply(status, headers, body)

    do_GET = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
