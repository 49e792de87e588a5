"""Headless Chromium for the dashboard's tests: Debian's chromium, installed when missing.

Two ways to use it:
- dump(url) and screenshot(url, path): one run of the browser on a page, in virtual time (the
  page's timers run without waiting; it stops while a request is out), then the DOM it
  rendered or a picture of it;
- Browser: a live page driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
  JSON messages ended by NUL, commands on the browser's fd 3, answers and events on its fd 4),
  for what a person does: type a token, click a button, accept a confirmation.
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

from tpclaunch import procfs

SIZE = (1440, 900)


def chromium():
    """Debian's chromium, installed if it is missing (the tests run as root in CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends",
                                       "chromium"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, "cannot install chromium (%s): %s" % (" ".join(cmd),
                                                                       r.stderr[-2000:])
    path = shutil.which("chromium")
    assert path, "chromium installed but not on PATH"
    return path


def _flags(profile):
    return ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-breakpad", "--disable-crash-reporter", "--user-data-dir=" + profile,
            "--window-size=%d,%d" % SIZE]


def _group_alive(pgid):
    """Whether a process of group pgid still runs (a zombie, which nobody may reap in a
    container, does not)."""
    return any(len(f) > 2 and int(f[2]) == pgid and f[0] not in ("Z", "X")
               for _, f in procfs.processes())


def _reap_group(pgid, timeout=10):
    """Until no process of the browser's process group runs (its renderers and helpers outlive
    the browser a moment and still write into the profile); the group is the browser's own
    session, started by us. Bounded: what is left then is killed, and waited for once more."""
    for last in (False, True):
        deadline = time.monotonic() + timeout
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                if last:
                    return
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    return
                break
            time.sleep(0.05)
        else:
            return


def _run(url, extra):
    """One run on url with a fresh profile; extra: its output flag. Its stdout."""
    with tempfile.TemporaryDirectory(prefix="tpc-chromium-") as profile:
        cmd = [chromium()] + _flags(profile) + ["--virtual-time-budget=8000", extra, url]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=profile, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
            _reap_group(proc.pid)
    assert proc.returncode == 0, "chromium failed: %s" % err[-3000:]
    return out


def dump(url):
    """The DOM the page rendered after about four of its two-second polls (virtual time)."""
    return _run(url, "--dump-dom")


def screenshot(url, path):
    _run(url, "--screenshot=" + os.path.abspath(path))


class Browser:
    """A page in a live headless Chromium; every wait is bounded. Use as a context manager."""

    def __init__(self, timeout=30):
        self.timeout, self.next_id, self.buf, self.session = timeout, 0, b"", None
        self.profile = tempfile.TemporaryDirectory(prefix="tpc-chromium-")
        self.dialogs = []  # the text of each confirmation accepted
        # Pipes for fds 3 and 4 of the browser, kept above 9 so that bash's redirections
        # cannot clobber one with the other (dash takes only one-digit fds).
        cmd_r, cmd_w = os.pipe()
        ev_r, ev_w = os.pipe()
        cmd_r2, ev_w2 = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, ev_w))
        for fd in (cmd_r, ev_w):
            os.close(fd)
        args = [chromium()] + _flags(self.profile.name) + ["--remote-debugging-pipe",
                                                           "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (cmd_r2, ev_w2, cmd_r2, ev_w2),
             "bash"] + args, pass_fds=(cmd_r2, ev_w2), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.profile.name,
            start_new_session=True)
        os.close(cmd_r2)
        os.close(ev_w2)
        self.wfd, self.rfd = cmd_w, ev_r
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"},
                               session=False)["targetId"]
            self.session = self.send("Target.attachToTarget",
                                     {"targetId": target, "flatten": True},
                                     session=False)["sessionId"]
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1,
                       "mobile": False})
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Asks the browser to close, then ends what is left of it (bounded), then removes its
        profile."""
        try:
            self.next_id += 1
            self._write("Browser.close", None, False, self.next_id)
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()  # the browser we started, by its process
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        _reap_group(self.proc.pid)
        self.profile.cleanup()

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.rfd], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.rfd, 1 << 16)
            assert chunk, "chromium closed its pipe (exit %s)" % self.proc.poll()
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def _write(self, method, params, session, ident):
        msg = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")

    def send(self, method, params=None, session=True):
        """A command's result; events that arrive meanwhile are handled (a confirmation is
        accepted, and its text kept)."""
        self.next_id += 1
        ident = self.next_id
        self._write(method, params, session, ident)
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("method") == "Page.javascriptDialogOpening":
                self.dialogs.append(m["params"].get("message", ""))
                self.next_id += 1
                self._write("Page.handleJavaScriptDialog", {"accept": True}, True,
                            self.next_id)
            elif m.get("id") == ident:
                assert "error" not in m, "%s: %s" % (method, m["error"])
                return m.get("result", {})

    def go(self, url):
        """Opens url and waits until its document has loaded (the page may have dropped the
        part after '#' from its address by then)."""
        self.send("Page.navigate", {"url": url})
        self.wait("location.href.split('#')[0] === %s && document.readyState === 'complete'"
                  % json.dumps(url.split("#")[0]), "%s to load" % url)

    def js(self, expression):
        """The value of a JavaScript expression in the page (a promise is awaited); a value
        JSON cannot carry (an element) comes back as {}: ask for !!element."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        assert "exceptionDetails" not in r, "%s: %s" % (expression, r["exceptionDetails"])
        return r.get("result", {}).get("value")

    def wait(self, expression, what, timeout=30):
        """Until the expression is truthy in the page (polled every 0.1 s); its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.js(expression)
            if v:
                return v
            assert time.monotonic() < deadline, "timed out waiting for %s" % what
            time.sleep(0.1)

    def type_text(self, text):
        """Types into the focused element, as a keyboard would."""
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
