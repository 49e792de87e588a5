"""The dashboard (GET /ui) in a real browser (issue: the operator's view; ctest dashboard_browser).

A live cluster holds transactions in every state (committed, aborted, active, preparing, in
doubt), heuristic decisions at two participants (one pending, one reconciled as heuristic
mixed), one replica down and a participant cut off from the replica serving the page.
Headless Chromium (Debian's; installed when missing, headless.py) loads the page from a
replica, runs its script against the live API, and the rendered DOM is checked for what it
must show, under load too; in a live page driven over the DevTools protocol, a person signs in
and aborts a transaction in doubt with the button. Screenshots (dashboard*.png) are saved in
TPC_SCREENSHOT_DIR (default: the current folder)."""
import html.parser
import os
import re
import threading
import time
import unittest

import headless
from tpclaunch import Cluster, wait_until
from tpclaunch.cluster import CLIENT_TOKEN, TOKEN

SHOTS = os.path.abspath(os.environ.get("TPC_SCREENSHOT_DIR", os.getcwd()))
TRANSFER = "UPDATE accounts SET balance = balance + ? WHERE id = ?"


class Dom(html.parser.HTMLParser):
    """Every element with its attributes and the text inside it, and which ids contain it."""

    def __init__(self, text):
        super().__init__()
        self.elements, self.stack = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": [],
              "inside": [e["attrs"].get("id") for e in self.stack if e["attrs"].get("id")]}
        self.elements.append(el)
        if tag not in ("br", "img", "input", "meta", "link", "hr", "col", "source", "wbr"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"].append(data)

    def find(self, cls=None, inside=None, **attrs):
        out = []
        for el in self.elements:
            a = el["attrs"]
            if cls and cls not in a.get("class", "").split():
                continue
            if inside and inside not in el["inside"] and a.get("id") != inside:
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(el)
        return out

    def text(self, el):
        return " ".join("".join(el["text"]).split())


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        headless.chromium()  # installed first: the states below must outlive its install
        # A long prepare timeout keeps a commit PREPARING while its participant is cut off; a
        # long stale time keeps an in-doubt transaction in doubt (nobody sweeps it); both far
        # longer than these tests take.
        cls.c = Cluster(n_replicas=3, participants=("bank-a", "bank-b", "bank-c", "bank-d"),
                        timeouts={"prepare": 600000, "commit": 2000, "stale": 600000})
        try:
            cls.states = cls.make_states(cls.c)
        except BaseException:  # tearDownClass does not run: stop what was started
            cls.c.heal()
            cls.c.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.heal()
        cls.c.stop()

    @classmethod
    def make_states(cls, c):
        s = {"committed": [], "aborted": []}
        for i in range(6):  # committed transfers, and some aborted
            tx = c.begin(0)
            for name, sign in (("bank-a", -1), ("bank-b", 1)):
                code, r = c.exec(0, tx, name, TRANSFER, [sign * (i + 1), 1])
                assert code == 200, r
            code, r = (c.commit if i % 3 else c.abort)(0, tx)
            assert code == 200, r
            s[r["outcome"]].append(tx)
        # Active: begun, a statement run, not committed.
        s["active"] = c.begin(0, timeout_ms=600000)
        code, r = c.exec(0, s["active"], "bank-a", TRANSFER, [0, 2])
        assert code == 200, r
        # Preparing: the leader cannot reach bank-d for the prepare, and waits for its vote
        # (and the dashboard, served by that leader, shows bank-d unreachable).
        tx = c.begin(0, timeout_ms=600000)
        for name in ("bank-a", "bank-d"):
            code, r = c.exec(0, tx, name, TRANSFER, [0, 3])
            assert code == 200, r
        c.faults(c.replica_urls[0], {"drop": [c.parts["bank-d"].url]})
        threading.Thread(target=c.commit, args=(0, tx), kwargs={"timeout": 5},
                         daemon=True).start()
        wait_until(lambda: c.status(0, tx)[1].get("state") == "preparing", what="preparing")
        s["preparing"] = tx
        # In doubt at r0: one vote reached its acceptor, and its leader is gone.
        s["in_doubt"] = "doubt-1"
        code, r = c.call(0, "POST", "/v1/paxos", {"messages": [
            {"type": "phase2a", "txid": "doubt-1", "instance": "bank-a",
             "ballot": {"round": 0, "replica": 0}, "value": "prepared",
             "participants": ["bank-a", "bank-b"], "born": int(time.time() * 1000)}]},
            token=TOKEN)
        assert code == 200 and r["messages"][0]["type"] == "phase2b", r
        # Heuristic decisions: bank-b's contradicts the outcome chosen later (mixed); bank-c's
        # waits for the replicas, which bank-c cannot reach (pending).
        for name, tx, outcome in (("bank-b", "heur-1", "committed"),
                                  ("bank-c", "heur-2", "aborted")):
            p = c.parts[name]
            c.faults(p.url, {"drop": list(c.replica_urls)})
            code, r = p.exec(tx, TRANSFER, [5, 2])
            assert code == 200, r
            code, r = p.call("POST", "/v1/branches/%s/prepare" % tx, {
                "type": "prepare", "txid": tx, "participants": ["bank-a", name]})
            assert code == 200 and r["value"] == "prepared", r
            code, r = p.call("POST", "/v1/branches/%s/heuristic" % tx, {"outcome": outcome})
            assert code == 200, r
        c.faults(c.parts["bank-b"].url, {})

        def mixed():
            code, r = c.parts["bank-b"].call("GET", "/v1/heuristics")
            return [h["state"] for h in r["heuristics"]] == ["mixed"]
        wait_until(mixed, timeout=30, what="bank-b's heuristic decision reconciled")
        c.replicas[2].kill()  # a replica down
        return s

    def load(self, fragment, shot):
        url = "%s/ui#token=%s%s" % (self.c.replica_urls[0], CLIENT_TOKEN, fragment)
        dom = Dom(headless.dump(url))
        headless.screenshot(url, os.path.join(SHOTS, shot))
        self.assertTrue(os.path.getsize(os.path.join(SHOTS, shot)) > 10000, shot)
        return dom

    def test_overview(self):
        dom = self.load("", "dashboard.png")
        body = [e for e in dom.elements if e["tag"] == "body"]
        self.assertEqual(body[0]["attrs"].get("data-ready"), "1", "the page never rendered data")
        banner = [e for e in dom.elements if e["attrs"].get("id") == "error-banner"]
        self.assertTrue(banner and ("hidden" in banner[0]["attrs"] or
                                    "display: none" in banner[0]["attrs"].get("style", "")),
                        "the error banner shows: %s" % (banner and dom.text(banner[0])))
        # The cluster: r0 and r1 up, r2 down; bank-d cut off from r0, the others up.
        nodes = {n["attrs"]["data-name"]: n["attrs"]["data-up"]
                 for n in dom.find(cls="node", inside="cluster")}
        self.assertEqual(nodes, {"r0": "true", "r1": "true", "r2": "false", "bank-a": "true",
                                 "bank-b": "true", "bank-c": "true", "bank-d": "false"})
        down = {n["attrs"]["data-name"]: dom.text(n)
                for n in dom.find(cls="node", inside="cluster") if n["attrs"]["data-up"] != "true"}
        self.assertIn("dropped by a network fault", down["bank-d"])
        self.assertIn("connect", down["r2"].lower())
        # Transactions by state: counts, live ones, recent decided ones.
        counts = {p["attrs"]["data-state"]: int(p["attrs"]["data-count"])
                  for p in dom.find(inside="counts") if "data-count" in p["attrs"]}
        for state in ("active", "preparing", "in_doubt"):
            self.assertGreaterEqual(counts.get(state, 0), 1, counts)
        self.assertGreaterEqual(counts.get("committed", 0), len(self.states["committed"]), counts)
        self.assertGreaterEqual(counts.get("aborted", 0), len(self.states["aborted"]), counts)
        live = {r["attrs"]["data-txid"]: r["attrs"]["data-state"]
                for r in dom.find(cls="txn", inside="live")}
        for state in ("active", "preparing", "in_doubt"):
            self.assertEqual(live.get(self.states[state]), state, live)
        # The in-doubt one first, highlighted, with its participants and its age.
        rows = dom.find(cls="txn", inside="live")
        self.assertEqual(rows[0]["attrs"]["data-txid"], self.states["in_doubt"])
        self.assertIn("doubt", rows[0]["attrs"]["class"].split())
        self.assertIn("waiting for a decision", dom.text(rows[0]))
        self.assertIn("bank-a, bank-b", dom.text(rows[0]))
        self.assertRegex(dom.text(rows[0]), r"\d+(\.\d)? s$")
        recent = {r["attrs"]["data-txid"]: r["attrs"]["data-state"]
                  for r in dom.find(cls="txn", inside="recent")}
        for state in ("committed", "aborted"):
            for tx in self.states[state]:
                self.assertEqual(recent.get(tx), state, recent)
        # Heuristic decisions: mixed at bank-b, pending at bank-c.
        heur = {(h["attrs"]["data-participant"], h["attrs"]["data-txid"]): h["attrs"]["data-state"]
                for h in dom.find(cls="heur", inside="heuristics")}
        self.assertEqual(heur, {("bank-b", "heur-1"): "mixed", ("bank-c", "heur-2"): "pending"})
        self.assertTrue(dom.find(inside="charts", id="chart-throughput"))
        self.assertTrue(dom.find(inside="charts", id="chart-latency"))

    def test_detail_of_a_transaction_in_doubt(self):
        dom = self.load("&txid=" + self.states["in_doubt"], "dashboard-detail.png")
        detail = [e for e in dom.elements if e["attrs"].get("id") == "detail"]
        self.assertTrue(detail, "no detail panel")
        self.assertEqual(detail[0]["attrs"].get("data-txid"), "doubt-1")
        text = dom.text(detail[0])
        self.assertIn("in_doubt".replace("_", " "), text.replace("_", " ").lower())
        self.assertIn("bank-a", text)
        self.assertIn("prepared", text)  # the vote this replica's acceptor accepted

    def test_detail_of_a_commit_waiting_for_a_vote(self):
        """The preparing one: bank-a's vote is chosen prepared, bank-d's has not come."""
        dom = self.load("&txid=" + self.states["preparing"], "dashboard-preparing.png")
        insts = {i["attrs"]["data-participant"]: (i["attrs"].get("data-vote"),
                                                  i["attrs"].get("data-chosen"))
                 for i in dom.find(cls="inst", inside="detail")}
        self.assertEqual(set(insts), {"bank-a", "bank-d"}, insts)
        self.assertEqual(insts["bank-a"], ("prepared", "prepared"), insts)
        self.assertNotIn("prepared", insts["bank-d"], insts)

    def test_throughput_and_latency_under_load(self):
        """Transfers run while the page polls: the charts plot them."""
        c, stop, done = self.c, threading.Event(), []

        def load():
            deadline = time.monotonic() + 120
            while not stop.is_set() and len(done) < 5000 and time.monotonic() < deadline:
                sign = 1 if len(done) % 2 else -1
                tx = c.begin(0)
                for name, amount in (("bank-a", sign), ("bank-b", -sign)):
                    code, r = c.exec(0, tx, name, TRANSFER, [amount, 1])
                    assert code == 200, r
                # Applied before the next one locks the same rows (a commit answered at the
                # decision may still hold them a moment at a busy participant).
                code, r = c.commit(0, tx, wait="applied")
                assert code == 200 and r["outcome"] == "committed", r
                done.append(tx)
        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            wait_until(lambda: len(done) >= 5 or not t.is_alive(), what="the load to run")
            # In real time (each two-second poll sees commits): until two intervals are
            # plotted on each chart and the figures above them show the load.
            with headless.Browser() as b:
                b.go("%s/ui#token=%s" % (c.replica_urls[0], CLIENT_TOKEN))
                b.wait("""(() => {
                    const pts = (id) => +document.getElementById(id).dataset.points;
                    const txt = (id) => document.getElementById(id).textContent;
                    return pts('chart-throughput') >= 2 && pts('chart-latency') >= 2 &&
                      parseFloat(txt('tp-now').replace(/,/g, '')) > 0 &&
                      /^[0-9.,]+ ms$/.test(txt('lat-50')) && /^[0-9.,]+ ms$/.test(txt('lat-99'));
                    })()""", "the charts to plot the load", timeout=60)
                b.screenshot(os.path.join(SHOTS, "dashboard-load.png"))
                shown = b.js("[document.getElementById('tp-now').textContent, "
                             "document.getElementById('lat-50').textContent]")
                # Each node's recent probes, as the page saw them: r2's all failed, r1's none.
                recent = b.js("""Object.fromEntries([...document.querySelectorAll(
                    '#cluster tr.node')].map((n) => { const r = n.querySelector('.nrecent');
                    return [n.dataset.name, r ? [+r.dataset.probes, +r.dataset.failed] : null];
                    }))""")
        finally:
            stop.set()
            t.join(timeout=60)
        self.assertFalse(t.is_alive())
        self.assertGreater(len(done), 0)
        self.assertTrue(recent["r2"] and recent["r2"][0] >= 2 and
                        recent["r2"][1] == recent["r2"][0], recent)
        self.assertTrue(recent["r1"] and recent["r1"][0] >= 2 and recent["r1"][1] == 0, recent)
        rate = re.fullmatch(r"([\d.,]+) tx/s", shown[0])
        self.assertTrue(rate and float(rate.group(1).replace(",", "")) > 0, shown)

    def test_a_person_signs_in_and_aborts_a_transaction_in_doubt(self):
        """In a live browser: the page asks for the token, refuses a wrong one, takes the right
        one typed in; the operator opens a transaction in doubt, clicks "Abort through Paxos",
        accepts the confirmation, and the replicas choose aborted."""
        c, tx = self.c, "doubt-2"
        code, r = c.call(0, "POST", "/v1/paxos", {"messages": [
            {"type": "phase2a", "txid": tx, "instance": "bank-b",
             "ballot": {"round": 0, "replica": 0}, "value": "prepared",
             "participants": ["bank-a", "bank-b"], "born": int(time.time() * 1000)}]},
            token=TOKEN)
        self.assertTrue(code == 200 and r["messages"][0]["type"] == "phase2b", r)
        self.assertEqual(c.status(0, tx)[1].get("state"), "in_doubt")
        with headless.Browser() as b:
            b.go(c.replica_urls[0] + "/ui")
            b.wait("!document.getElementById('login').hidden", "the page to ask for the token")
            for token, what in (("wrong-token", "the refusal"), (CLIENT_TOKEN, "the data")):
                b.js("document.getElementById('token-input').focus()")
                b.type_text(token)
                b.js("document.querySelector('#login-form button[type=submit]').click()")
                if token != CLIENT_TOKEN:
                    err = b.wait("!document.getElementById('login').hidden && "
                                 "!document.getElementById('login-error').hidden && "
                                 "document.getElementById('login-error').textContent", what)
                    self.assertIn("Wrong token", err)
            b.wait("document.body.dataset.ready === '1' && "
                   "document.getElementById('login').hidden", what)
            # The transaction in doubt is listed, highlighted; a click opens its detail.
            b.wait("!!document.querySelector('#live tr.txn.doubt[data-txid=\"%s\"]')" % tx,
                   "the row of %s" % tx)
            b.js("document.querySelector('#live tr.txn[data-txid=\"%s\"] [data-open]').click()"
                 % tx)
            b.wait("document.getElementById('detail').dataset.txid === '%s' && "
                   "!!document.getElementById('abort-btn')" % tx, "the detail and its button")
            b.js("document.getElementById('abort-btn').click()")
            result = b.wait("document.getElementById('resolve-result') && "
                            "document.getElementById('resolve-result').textContent",
                            "the outcome of the abort")
            self.assertEqual(len(b.dialogs), 1, b.dialogs)
            self.assertIn("Abort transaction %s through Paxos?" % tx, b.dialogs[0])
            self.assertIn("Resolved through Paxos: outcome aborted", result)
            b.wait("!!document.querySelector('#recent tr.txn[data-txid=\"%s\"]"
                   "[data-state=\"aborted\"]')" % tx, "the abort among the decided ones")
            b.screenshot(os.path.join(SHOTS, "dashboard-resolved.png"))
        for i in (0, 1):  # chosen through Paxos: every replica that answers says so
            wait_until(lambda: c.status(i, tx)[1].get("state") == "aborted", timeout=10,
                       what="replica %d to know %s aborted" % (i, tx))


if __name__ == "__main__":
    unittest.main()
