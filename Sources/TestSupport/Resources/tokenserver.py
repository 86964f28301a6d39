#!/usr/bin/python3
"""A registry token server (distribution's token auth) for regwatch's tests. Standard library + openssl CLI.

  tokenserver.py PORT KEY CERT ISSUER USER:PASSWORD [DENIED_REPO]

Issues RS256 JWTs with an x5c header for USER; a request without or with wrong credentials gets 401.
DENIED_REPO is granted no actions, which the registry answers as an unauthorized request.
"""
import base64
import http.server
import json
import socketserver
import subprocess
import sys
import time
import urllib.parse
import uuid

PORT, KEY, CERT, ISSUER, CREDS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
DENIED = sys.argv[6] if len(sys.argv) > 6 else None
DER = subprocess.run(["openssl", "x509", "-in", CERT, "-outform", "DER"], capture_output=True, check=True).stdout


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(DER).decode()]}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input.encode(), capture_output=True, check=True).stdout
    return signing_input + "." + b64url(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic ") or base64.b64decode(auth[6:]).decode() != CREDS:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":", 2)
            access.append({"type": kind, "name": name, "actions": [] if name == DENIED else actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": CREDS.split(":")[0], "aud": query.get("service", [""])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        token = sign(claims)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
