#!/usr/bin/python3
# browser.py: look at the aggregator's HTML dashboard in a real headless Chromium, for the end-to-end tests.
#   python3 browser.py --out DIR SPEC.json   (SPEC: [{"name", "url", "width", "height"}, ...])
# Per shot: DIR/<name>.png (the full page), DIR/<name>.html (the DOM Chromium built) and one JSON line on stdout
# with layout facts: scrollWidth against innerWidth, elements or text sticking out past the right edge outside any
# scrolling/clipping box, <script> count, console errors (CSP violations land there), document.title.
# Why the DevTools protocol and not `chromium --screenshot`/`--dump-dom` alone: one Chromium process serves every
# shot (start-up is most of the cost on 2 cores), the screenshot covers the whole page rather than one viewport,
# and Runtime.evaluate measures layout in the page as rendered; DevTools evaluation is not bound by the page's CSP.
# Only loopback URLs; name resolution is mapped to nothing. Any failure: one `browser.py: ...` line on stderr, exit 1.
# Needs Debian's chromium and python3-websocket (run it with /usr/bin/python3, not a pyenv python3 on PATH).

import argparse
import base64
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

CHROMIUM = os.environ.get("REGWATCH_CHROMIUM", "/usr/bin/chromium")
START_DEADLINE = 30.0  # Chromium writes DevToolsActivePort
LOAD_DEADLINE = 20.0  # Page.navigate .. Page.loadEventFired
CALL_DEADLINE = 30.0  # any other DevTools call
MAX_SHOT_HEIGHT = 16384  # taller pages are cut there ("truncated": true); GPU-less capture limits lie near it
MOBILE_BELOW = 600


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP (a test timing out) into an exception so the finally block still kills Chromium.
    raise Failure("killed by signal %d" % signum)


# ---------------------------------------------------------------- the spec

def loopback_url(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    if u.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(u.hostname).is_loopback
    except ValueError:
        return False


def read_spec(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        fail("cannot read spec %s: %s" % (path, e))
    if not isinstance(spec, list) or not spec:
        fail("spec %s: want a non-empty JSON list of shots" % path)
    names = set()
    for i, shot in enumerate(spec):
        if not isinstance(shot, dict):
            fail("spec shot %d: not an object" % i)
        name, url = shot.get("name"), shot.get("url")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "._-" for c in name) or name[0] == ".":
            fail("spec shot %d: name %r must be [A-Za-z0-9._-]+" % (i, name))
        if name in names:
            fail("spec shot %d: name %r used twice" % (i, name))
        names.add(name)
        if not isinstance(url, str) or not loopback_url(url):
            fail("spec shot %r: refusing url %r (loopback http(s) only)" % (name, url))
        for k in ("width", "height"):
            v = shot.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or not 100 <= v <= 10000:
                fail("spec shot %r: %s %r must be an integer in 100..10000" % (name, k, v))
    return spec


# ---------------------------------------------------------------- Chromium and the protocol

def start_chromium(tmp):
    if not os.access(CHROMIUM, os.X_OK):
        fail("chromium not found at %s (apt-get install chromium)" % CHROMIUM)
    profile = os.path.join(tmp, "profile")
    os.mkdir(profile)
    log = open(os.path.join(tmp, "chromium.log"), "wb")
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "about:blank"]
    # HOME and XDG dirs inside the temp dir too: Chromium keeps an NSS database in ~/.pki and its crash database in
    # ~/.config/chromium, and the crashpad handlers, which run in sessions of their own (out of reach of the group
    # kill), can then be told by that path on their command line.
    env = dict(os.environ)
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "home/.config"), ("XDG_CACHE_HOME", "home/.cache"),
                     ("XDG_DATA_HOME", "home/.local/share")):
        env[var] = os.path.join(tmp, sub)
        os.makedirs(env[var], exist_ok=True)
    # Its own session (process group) so that every helper process it forks dies with it.
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    log.close()
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            with open(port_file) as f:
                lines = f.read().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/devtools/browser/"):
                return proc, "ws://127.0.0.1:%s%s" % (lines[0].strip(), lines[1].strip())
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            fail("chromium exited with status %s before listening: %s" % (proc.returncode, log_tail(tmp)))
        if time.monotonic() > deadline:
            fail("chromium wrote no DevToolsActivePort within %.0f s: %s" % (START_DEADLINE, log_tail(tmp)))
        time.sleep(0.05)


def log_tail(tmp):
    try:
        with open(os.path.join(tmp, "chromium.log"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    lines = [l for l in text.splitlines() if l.strip()]
    return " | ".join(lines[-3:]) or "(empty log)"


class CDP:
    """One websocket to the browser endpoint; pages are reached through flattened sessions."""

    def __init__(self, url):
        import websocket  # python3-websocket (websocket-client)
        self.ws_mod = websocket
        # No Origin header: Chromium refuses DevTools websockets whose Origin it does not allow.
        self.ws = websocket.create_connection(url, timeout=CALL_DEADLINE, suppress_origin=True,
                                              enable_multithread=False)
        self.next_id = 0
        self.events = []  # (method, params, sessionId), in arrival order

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

    def _recv(self, deadline, what):
        left = deadline - time.monotonic()
        if left <= 0:
            fail("timed out waiting for %s" % what)
        self.ws.settimeout(left)
        try:
            raw = self.ws.recv()
        except self.ws_mod.WebSocketTimeoutException:
            fail("timed out waiting for %s" % what)
        except (self.ws_mod.WebSocketException, OSError) as e:
            fail("DevTools connection lost waiting for %s: %s" % (what, e))
        return json.loads(raw)

    def call(self, method, params=None, session=None, deadline=None):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            self.ws.send(json.dumps(msg))
        except (self.ws_mod.WebSocketException, OSError) as e:
            fail("DevTools connection lost sending %s: %s" % (method, e))
        deadline = deadline or time.monotonic() + CALL_DEADLINE
        while True:
            m = self._recv(deadline, method)
            if m.get("id") == mid:
                if "error" in m:
                    fail("%s: %s" % (method, m["error"].get("message", m["error"])))
                return m.get("result", {})
            if "method" in m:
                self.events.append((m["method"], m.get("params", {}), m.get("sessionId")))

    def pump(self, deadline, what, until):
        """Read events until until(events) returns something true, then return it."""
        while True:
            r = until(self.events)
            if r:
                return r
            m = self._recv(deadline, what)
            if "method" in m:
                self.events.append((m["method"], m.get("params", {}), m.get("sessionId")))

    def drain(self, seconds):
        """Take in whatever events arrive within a short while (late console messages)."""
        deadline = time.monotonic() + seconds
        self.ws.settimeout(seconds)
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                m = json.loads(self.ws.recv())
            except self.ws_mod.WebSocketTimeoutException:
                return
            except (self.ws_mod.WebSocketException, OSError) as e:
                fail("DevTools connection lost: %s" % e)
            if "method" in m:
                self.events.append((m["method"], m.get("params", {}), m.get("sessionId")))


# ---------------------------------------------------------------- one shot

# Layout facts, measured in the page. "innerWidth" is the width the page is laid out for, the layout viewport
# (documentElement.clientWidth, scrollbars are hidden): with mobile emulation and a page wider than the phone,
# Chromium zooms out to fit it, as a phone does, and window.innerWidth then grows to the page's width (reported as
# windowInnerWidth), so it cannot show the overflow; scrollWidth > innerWidth does. An element, or a run of text (a long word overflows its box, the box stays
# put), counts as overflowing when its right edge is past innerWidth + 1 and no ancestor below <body> scrolls or clips
# it horizontally (overflow-x auto/scroll/hidden/clip); <html> and <body> are not counted as such ancestors, their
# overflow is the viewport's, where cut-off text is exactly what we look for. Only the outermost culprits are listed:
# a wide table is one entry, not one per row and cell.
LAYOUT_JS = r"""
(() => {
  const root = document.documentElement, body = document.body;
  const iw = root.clientWidth, limit = iw + 1;
  const clips = new Map();
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== body && a !== root; a = a.parentElement) {
      let c = clips.get(a);
      if (c === undefined) {
        const o = getComputedStyle(a).overflowX;
        c = o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip';
        clips.set(a, c);
      }
      if (c) return true;
    }
    return false;
  };
  const listed = new Set();
  const under = (el) => { for (let a = el; a; a = a.parentElement) if (listed.has(a)) return true; return false; };
  const squash = (s) => (s || '').replace(/\s+/g, ' ').trim().slice(0, 80);
  const overflow = [];
  const add = (el, text, right) => {
    listed.add(el);
    overflow.push({tag: el.tagName.toLowerCase(), id: el.id || '', class: el.getAttribute('class') || '',
                   text: squash(text), right: Math.round(right)});
  };
  let total = 0;
  const walker = document.createTreeWalker(body || root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
  for (let n = walker.currentNode; n; n = walker.nextNode()) {
    if (n.nodeType === Node.ELEMENT_NODE) {
      const r = n.getBoundingClientRect();
      if ((r.width === 0 && r.height === 0) || r.right <= limit) continue;
      if (clipped(n) || under(n)) continue;
      total++;
      if (overflow.length < 20) add(n, n.innerText !== undefined ? n.innerText : n.textContent, r.right);
    } else if (n.parentElement && n.textContent.trim()) {
      const range = document.createRange();
      range.selectNodeContents(n);
      const r = range.getBoundingClientRect();
      if ((r.width === 0 && r.height === 0) || r.right <= limit) continue;
      const el = n.parentElement;
      if (clipped(n) || under(el)) continue;
      total++;
      if (overflow.length < 20) add(el, n.textContent, r.right);
    }
  }
  return {innerWidth: iw, windowInnerWidth: window.innerWidth, scrollWidth: root.scrollWidth, overflow: overflow,
          scripts: document.querySelectorAll('script').length, title: document.title};
})()
"""

# After the load event: window.stop() cancels a pending <meta http-equiv=refresh> (the dashboard has one), so the page
# cannot reload under the probe or the screenshot; then fonts and two animation frames, for a settled layout.
SETTLE_JS = """
(async () => {
  window.stop();
  if (document.fonts) await document.fonts.ready;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
})()
"""


def console_errors(events, session):
    out = []
    for method, p, s in events:
        if s != session:
            continue
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            parts = []
            for a in p.get("args", []):
                v = a.get("value")
                parts.append(v if isinstance(v, str) else json.dumps(v) if "value" in a else a.get("description", a.get("type", "?")))
            out.append("console.%s: %s" % (p.get("type"), " ".join(parts)))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            if e.get("source") == "network" and urllib.parse.urlsplit(e.get("url", "")).path == "/favicon.ico":
                # Chromium asks for /favicon.ico by itself after the load (not under a CSP that forbids images);
                # whether its 404 lands before we stop listening is a race, so it is left out.
                continue
            where = (" (%s:%s)" % (e["url"], e.get("lineNumber", 0))) if e.get("url") else ""
            out.append("%s: %s%s" % (e.get("source", "other"), e.get("text", ""), where))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text", "exception")
            out.append("exception: %s" % desc.split("\n")[0])
    return out


def evaluate(cdp, session, expr, what):
    r = cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session)
    if "exceptionDetails" in r:
        d = r["exceptionDetails"]
        fail("%s threw: %s" % (what, d.get("exception", {}).get("description") or d.get("text")))
    return r.get("result", {}).get("value")


def shoot(cdp, shot, out_dir):
    started = time.monotonic()
    name, url, width, height = shot["name"], shot["url"], shot["width"], shot["height"]
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    try:
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(domain + ".enable", {}, session)
        cdp.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < MOBILE_BELOW}, session)
        cdp.events = [e for e in cdp.events if e[2] != session]  # nothing from about:blank counts
        mark = len(cdp.events)
        deadline = time.monotonic() + LOAD_DEADLINE
        try:
            nav = cdp.call("Page.navigate", {"url": url}, session, deadline=deadline)
        except Failure as e:
            if "timed out" in str(e):  # Page.navigate answers once the response has started to come
                fail("%s: no answer from %s within %.0f s" % (name, url, LOAD_DEADLINE))
            raise
        frame, loader = nav.get("frameId"), nav.get("loaderId")
        if nav.get("errorText"):
            # An error status with an empty body ends here (net::ERR_HTTP_RESPONSE_CODE_FAILURE): name the status.
            for method, p, s in cdp.events[mark:]:
                if s == session and method == "Network.responseReceived" and p.get("type") == "Document" and \
                        (not loader or p.get("loaderId") == loader):
                    fail("%s: %s answered HTTP %s (%s)" % (name, p["response"].get("url") or url,
                                                          p["response"].get("status"), nav["errorText"]))
            fail("%s: loading %s failed: %s" % (name, url, nav["errorText"]))

        doc = {}

        def loaded(events):
            navigated = False
            for method, p, s in events[mark:]:
                if s != session:
                    continue
                if method == "Network.responseReceived" and p.get("type") == "Document" and \
                        p.get("frameId") == frame and (not loader or p.get("loaderId") == loader):
                    doc["status"] = p["response"].get("status")
                    doc["url"] = p["response"].get("url")
                elif method == "Network.loadingFailed" and p.get("type") == "Document" and \
                        (not loader or p.get("loaderId") == loader):
                    fail("%s: loading %s failed: %s" % (name, url, p.get("errorText")))
                elif method == "Page.frameNavigated" and p["frame"].get("id") == frame and \
                        not p["frame"].get("parentId"):
                    navigated = True
                elif method == "Page.loadEventFired" and navigated:
                    return True
            return False

        try:
            cdp.pump(deadline, "the load event", loaded)
        except Failure as e:
            if "timed out" in str(e):
                fail("%s: no load event for %s within %.0f s" % (name, url, LOAD_DEADLINE))
            raise
        if "status" not in doc:
            fail("%s: saw no response for the main document of %s" % (name, url))
        if not 200 <= doc["status"] < 400:
            fail("%s: %s answered HTTP %s" % (name, doc.get("url") or url, doc["status"]))

        evaluate(cdp, session, SETTLE_JS, "settling")
        # Layout before the screenshot: captureBeyondViewport briefly resizes the view to the whole page.
        layout = evaluate(cdp, session, LAYOUT_JS, "the layout probe")
        cdp.drain(0.05)
        layout["consoleErrors"] = console_errors(cdp.events[mark:], session)

        metrics = cdp.call("Page.getLayoutMetrics", {}, session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        cw = max(width, int(round(size["width"])))
        full = max(height, int(round(size["height"])))
        ch = min(MAX_SHOT_HEIGHT, full)
        shot_png = cdp.call("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True, "fromSurface": True,
                             "clip": {"x": 0, "y": 0, "width": cw, "height": ch, "scale": 1}}, session)
        png = os.path.join(out_dir, name + ".png")
        with open(png, "wb") as f:
            f.write(base64.b64decode(shot_png["data"]))

        root = cdp.call("DOM.getDocument", {"depth": -1}, session)["root"]
        html_text = cdp.call("DOM.getOuterHTML", {"nodeId": root["nodeId"]}, session)["outerHTML"]
        html = os.path.join(out_dir, name + ".html")
        with open(html, "w", encoding="utf-8") as f:
            f.write(html_text)

        return {"name": name, "png": png, "html": html, "width": width, "layout": layout,
                "truncated": full > ch, "ms": int((time.monotonic() - started) * 1000)}
    finally:
        try:
            cdp.call("Target.closeTarget", {"targetId": target}, deadline=time.monotonic() + 5)
        except Failure:
            pass
        cdp.events = []


# ---------------------------------------------------------------- main

def stop_chromium(proc, cdp, tmp):
    if cdp is not None:
        try:
            cdp.ws.settimeout(2)
            cdp.ws.send(json.dumps({"id": 0, "method": "Browser.close", "params": {}}))
        except Exception:
            pass
        cdp.close()
    if proc is None:
        return
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: renderers, zygotes, utilities
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    # Then, by pid, the crashpad handlers of this run (their own sessions; --database under our temp dir), and wait
    # (bounded) until nothing of ours runs. Zombies do not count: reparented helpers are reaped by PID 1, in its time.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = ours_running(proc.pid, tmp)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def ours_running(pgid, tmp):
    """Pids, not zombies, in Chromium's process group or with our temp dir on their command line."""
    mark = ("=" + tmp + "/").encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] in ("Z", "X"):
                continue
            if int(fields[2]) != pgid:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    if mark not in f.read():
                        continue
        except (OSError, IndexError, ValueError):
            continue
        found.append(int(name))
    return found


def main(argv):
    ap = argparse.ArgumentParser(description="Screenshots, DOM and layout facts of pages in headless Chromium.")
    ap.add_argument("--out", required=True, help="directory for <name>.png and <name>.html")
    ap.add_argument("spec", help="JSON list of {name, url, width, height}")
    args = ap.parse_args(argv)

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)

    tmp = proc = cdp = None
    try:
        spec = read_spec(args.spec)
        try:
            import websocket  # noqa: F401
        except ImportError:
            fail("python module websocket missing: apt-get install python3-websocket, run with /usr/bin/python3")
        os.makedirs(args.out, exist_ok=True)
        out_dir = os.path.abspath(args.out)
        tmp = tempfile.mkdtemp(prefix="regwatch-browser-")
        proc, ws_url = start_chromium(tmp)
        try:
            cdp = CDP(ws_url)
        except Exception as e:
            fail("cannot connect to chromium's DevTools at %s: %s" % (ws_url, e))
        for shot in spec:
            print(json.dumps(shoot(cdp, shot, out_dir)), flush=True)
        return 0
    except Failure as e:
        print("browser.py: %s" % e, file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # a bug here or an unexpected answer: still one line, still exit 1
        print("browser.py: %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
        return 1
    finally:
        # Ignore further signals while cleaning up so a second TERM cannot leave Chromium behind.
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        stop_chromium(proc, cdp, tmp)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
