"""Branches that write tables with UNIQUE constraints and foreign keys (issue: real schemas).

A branch locks what the constraints read (UNIQUE values, referenced parent keys) as well as its
rows, so a branch that voted prepared always applies: the real participant binary, real database
files, loopback. test_constraints_random.py drives the same schema concurrently, with crashes."""
import re
import threading
import unittest

from tpclaunch import FakeReplica, Participant

SHOP = """
PRAGMA foreign_keys = ON;
CREATE TABLE customers(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE,
                       name TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY,
                    customer_id INTEGER NOT NULL REFERENCES customers(id)
                        ON DELETE CASCADE ON UPDATE CASCADE,
                    ref TEXT UNIQUE, amount INTEGER NOT NULL);
CREATE TABLE notes(id INTEGER PRIMARY KEY,
                   customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
                   body TEXT);
CREATE TABLE payments(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
                      amount INTEGER);
CREATE TABLE pending(id INTEGER PRIMARY KEY,
                     customer_id INTEGER REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE slugs(id INTEGER PRIMARY KEY, slug TEXT);
CREATE UNIQUE INDEX slugs_lower ON slugs(lower(slug));
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT UNIQUE ON CONFLICT REPLACE);
CREATE TABLE seats(id INTEGER PRIMARY KEY, holder TEXT, active INTEGER NOT NULL);
CREATE UNIQUE INDEX one_active_seat ON seats(holder) WHERE active = 1;
CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER);
CREATE TABLE audited(id INTEGER PRIMARY KEY, v INTEGER);
CREATE TABLE audit_log(id INTEGER PRIMARY KEY, note TEXT);
CREATE TRIGGER audit AFTER UPDATE ON audited BEGIN INSERT INTO audit_log(note) VALUES ('x'); END;
INSERT INTO customers VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob');
INSERT INTO orders VALUES (10, 1, 'A-10', 5);
INSERT INTO audited VALUES (1, 1);
INSERT INTO seats VALUES (1, 'x', 0), (2, 'x', 0);
"""


class ConstraintsTest(unittest.TestCase):
    def setUp(self):
        self.replicas = [FakeReplica(i) for i in range(3)]
        self.p = Participant(replicas=self.replicas, schema=SHOP, lock_timeout_ms=300)

    def tearDown(self):
        self.p.stop()
        for r in self.replicas:
            r.stop()

    def ok(self, txid, sql, params=None):
        code, r = self.p.exec(txid, sql, params)
        self.assertEqual(code, 200, (sql, r))
        return r["results"][0]

    def err(self, txid, sql, params=None):
        code, r = self.p.exec(txid, sql, params)
        self.assertNotEqual(code, 200, (sql, r))
        return code, r["error"]["code"], r["error"]["message"]

    def commit(self, txid):
        self.assertEqual(self.p.prepare(txid)[0], 200)
        for r in self.replicas:
            r.outcomes[txid] = "committed"
        code, ack = self.p.commit(txid)
        self.assertEqual((code, ack.get("outcome")), (200, "committed"), ack)

    def abort(self, txid):
        code, ack = self.p.abort(txid)
        self.assertEqual(code, 200, ack)

    def metric(self, name):
        import urllib.request
        with urllib.request.urlopen(self.p.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^%s (\d+)$" % name, text, re.M)
        self.assertIsNotNone(m, name)
        return int(m.group(1))

    def check_database(self):
        self.assertEqual(self.p.rows("PRAGMA foreign_key_check"), [])
        self.assertEqual(self.p.rows("PRAGMA integrity_check"), [("ok",)])
        self.assertEqual(self.p.rows("SELECT txid FROM tpc_prepared"), [])
        self.assertEqual(self.metric("tpc_apply_failures_total"), 0)

    def test_unique_value_is_locked_under_its_collation(self):
        self.ok("t1", "INSERT INTO customers VALUES (3, 'Cat@Example.com', 'Cat')")
        # Another case of the same email: equal under NOCASE, so it waits, then is told who.
        code, kind, msg = self.err("t2", "INSERT INTO customers VALUES (4, 'cat@example.COM', 'C')")
        self.assertEqual((code, kind), (409, "lock_timeout"))
        self.assertIn("transaction t1", msg)
        self.assertIn("UNIQUE value customers(email) = ('cat@example.com')", msg)
        # Other emails are free meanwhile.
        self.ok("t3", "INSERT INTO customers VALUES (5, 'dan@example.com', 'Dan')")
        self.commit("t1")
        # Committed now: the same email fails at once against committed data.
        code, kind, msg = self.err("t2", "INSERT INTO customers VALUES (4, 'CAT@example.com', 'C')")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.abort("t2")
        self.commit("t3")
        self.check_database()

    def test_a_freed_unique_value_stays_held_until_the_outcome(self):
        # t1 gives up Ann's email; until t1's outcome, nobody else may take it (t1 may abort).
        self.ok("t1", "UPDATE customers SET email = 'ann@new.example' WHERE id = 1")
        code, kind, msg = self.err("t2", "UPDATE customers SET email = 'ANN@example.com' "
                                         "WHERE id = 2")
        # Evaluated on committed data Ann still has it: a violation at once, no wait.
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.abort("t2")
        code, kind, msg = self.err("t3", "UPDATE customers SET email = 'ann@new.example' "
                                         "WHERE id = 2")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.abort("t1")  # Ann keeps her email; the new one is free again
        self.ok("t3", "UPDATE customers SET email = 'ann@new.example' WHERE id = 2")
        self.commit("t3")
        self.assertEqual(self.p.rows("SELECT id, email FROM customers ORDER BY id"),
                         [(1, "ann@example.com"), (2, "ann@new.example")])
        self.check_database()

    def test_swapping_unique_values_in_one_branch(self):
        self.ok("t1", "UPDATE customers SET email = 'tmp' WHERE id = 1")
        self.ok("t1", "UPDATE customers SET email = 'ann@example.com' WHERE id = 2")
        self.ok("t1", "UPDATE customers SET email = 'bob@example.com' WHERE id = 1")
        self.commit("t1")
        self.assertEqual(self.p.rows("SELECT id, email FROM customers ORDER BY id"),
                         [(1, "bob@example.com"), (2, "ann@example.com")])
        self.check_database()

    def test_a_child_holds_its_parent(self):
        # Two orders for one customer at once: the parent is shared, neither waits.
        self.ok("o1", "INSERT INTO orders VALUES (11, 2, 'B-11', 7)")
        self.ok("o2", "INSERT INTO orders VALUES (12, 2, 'B-12', 8)")
        # Deleting the customer, or changing its key, waits for them.
        for sql in ("DELETE FROM customers WHERE id = 2", "UPDATE customers SET id = 20 WHERE id = 2"):
            code, kind, msg = self.err("d1", sql)
            self.assertEqual((code, kind), (409, "lock_timeout"), msg)
            self.assertIn("referenced key customers(id) = (2)", msg)
            self.assertRegex(msg, "transaction o[12]")
        # Other columns of the customer are free.
        self.ok("d2", "UPDATE customers SET name = 'Robert' WHERE id = 2")
        self.commit("o1")
        self.commit("o2")
        self.commit("d2")
        # Now the delete cascades to both orders (and, inside the branch, to nothing else).
        r = self.ok("d1", "DELETE FROM customers WHERE id = 2")
        self.assertEqual(r["changes"], 1)
        self.assertEqual(self.ok("d1", "SELECT count(*) FROM orders WHERE customer_id = 2")["rows"],
                         [[0]])
        self.commit("d1")
        self.assertEqual(self.p.rows("SELECT id FROM orders ORDER BY id"), [(10,)])
        self.check_database()

    def test_a_deleted_parent_refuses_new_children(self):
        self.ok("d1", "DELETE FROM customers WHERE id = 2")
        # On committed data customer 2 exists, so the insert runs; its hold on the parent
        # conflicts with the delete's.
        code, kind, msg = self.err("o1", "INSERT INTO orders VALUES (11, 2, 'B-11', 7)")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.commit("d1")
        code, kind, msg = self.err("o1", "INSERT INTO orders VALUES (11, 2, 'B-11', 7)")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.assertIn("FOREIGN KEY", msg)
        self.abort("o1")
        self.check_database()

    def test_cascades_and_set_null_are_locked_and_applied_once(self):
        self.ok("n1", "INSERT INTO notes VALUES (1, 1, 'vip')")
        self.commit("n1")
        # Deleting Ann cascades to order 10 and sets the note's customer to NULL: those rows
        # are the branch's too, so another branch touching them waits.
        self.ok("d1", "DELETE FROM customers WHERE id = 1")
        code, kind, msg = self.err("x1", "UPDATE orders SET amount = 6 WHERE id = 10")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.assertIn("row orders(id) = (10)", msg)
        code, kind, msg = self.err("x2", "UPDATE notes SET body = 'gone' WHERE id = 1")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.ok("d1", "SELECT 1")  # a later exec re-applies the cascade's changes cleanly
        self.commit("d1")
        self.assertEqual(self.p.rows("SELECT id FROM customers"), [(2,)])
        self.assertEqual(self.p.rows("SELECT count(*) FROM orders"), [(0,)])
        self.assertEqual(self.p.rows("SELECT id, customer_id FROM notes"), [(1, None)])
        # A key change cascades to the children.
        self.ok("u1", "INSERT INTO orders VALUES (30, 2, 'B-30', 1)")
        self.commit("u1")
        self.ok("u2", "UPDATE customers SET id = 22 WHERE id = 2")
        self.commit("u2")
        self.assertEqual(self.p.rows("SELECT id, customer_id FROM orders"), [(30, 22)])
        self.check_database()

    def test_restrict_fails_at_once_against_committed_children(self):
        self.ok("p1", "INSERT INTO payments VALUES (1, 10, 5)")
        self.commit("p1")
        code, kind, msg = self.err("d1", "DELETE FROM orders WHERE id = 10")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.abort("d1")
        self.check_database()

    def test_deferred_foreign_key_must_hold_at_the_end_of_each_exec(self):
        code, kind, msg = self.err("t1", "INSERT INTO pending VALUES (1, 99)")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.assertIn("deferred", msg)
        # Within one exec a deferred key may be satisfied by a later statement.
        code, r = self.p.call("POST", "/v1/branches/t1/exec", {"statements": [
            {"sql": "INSERT INTO pending VALUES (1, 99)"},
            {"sql": "INSERT INTO customers VALUES (99, 'late@example.com', 'Late')"}]})
        self.assertEqual(code, 200, r)
        self.commit("t1")
        self.check_database()

    def test_partial_unique_index_locks_at_any_update(self):
        # Whether a row is in the index depends on another column: two branches activating
        # two seats of one holder would both be valid alone.
        self.ok("a1", "UPDATE seats SET active = 1 WHERE id = 1")
        code, kind, msg = self.err("a2", "UPDATE seats SET active = 1 WHERE id = 2")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.assertIn("UNIQUE value seats(holder) = ('x')", msg)
        self.commit("a1")
        code, kind, msg = self.err("a2", "UPDATE seats SET active = 1 WHERE id = 2")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.abort("a2")
        self.check_database()

    def test_nocase_values_equal_up_to_a_nul_share_a_lock(self):
        # SQLite's NOCASE compares the lengths and the bytes up to a NUL character.
        self.ok("n1", "INSERT INTO customers VALUES (7, 'q' || char(0) || 'x', 'Q')")
        code, kind, msg = self.err("n2", "INSERT INTO customers VALUES (8, 'Q' || char(0) || 'y', "
                                         "'R')")
        self.assertEqual((code, kind), (409, "lock_timeout"), msg)
        self.abort("n2")
        self.commit("n1")
        self.check_database()

    def test_a_null_primary_key_is_refused(self):
        # A rowid table's TEXT PRIMARY KEY takes NULL; the changes of such a row could not be
        # recorded, so the exec fails instead of losing them at commit.
        code, kind, msg = self.err("k1", "INSERT INTO kv VALUES (NULL, 1)")
        self.assertEqual((code, kind), (409, "constraint_violation"), msg)
        self.assertIn("NOT NULL", msg)
        self.ok("k1", "INSERT INTO kv VALUES ('a', 1)")
        self.commit("k1")
        self.assertEqual(self.p.rows("SELECT k, v FROM kv"), [("a", 1)])
        self.check_database()

    def test_what_stays_read_only_and_why(self):
        cases = {"INSERT INTO slugs VALUES (1, 'a')": "expression",
                 "INSERT INTO tags VALUES (1, 'a')": "ON CONFLICT REPLACE",
                 "UPDATE audited SET v = 2 WHERE id = 1": "trigger"}
        for sql, why in cases.items():
            code, kind, msg = self.err("t1", sql)
            self.assertEqual((code, kind), (403, "forbidden_statement"), sql)
            self.assertIn(why, msg, sql)
        self.abort("t1")

    def test_prepared_branch_keeps_its_locks_across_a_restart(self):
        self.ok("o1", "INSERT INTO orders VALUES (11, 2, 'B-11', 7)")
        self.ok("o1", "UPDATE customers SET email = 'bobby@example.com' WHERE id = 2")
        self.assertEqual(self.p.prepare("o1")[0], 200)
        self.p.kill()
        self.p.start()
        for sql, held in (("DELETE FROM customers WHERE id = 2", "row customers"),
                          ("INSERT INTO customers VALUES (7, 'BOBBY@example.com', 'B')",
                           "UNIQUE value customers(email)"),
                          ("INSERT INTO orders VALUES (12, 1, 'B-11', 1)", "UNIQUE value orders(ref)")):
            code, kind, msg = self.err("x1", sql)
            self.assertEqual((code, kind), (409, "lock_timeout"), (sql, msg))
            self.assertIn(held, msg)
            self.assertIn("transaction o1", msg)
        self.abort("x1")
        for r in self.replicas:
            r.outcomes["o1"] = "committed"
        code, ack = self.p.commit("o1")
        self.assertEqual(code, 200, ack)
        self.check_database()

    def test_concurrent_children_and_parent_delete_end_consistent(self):
        # Many branches add orders for customer 1 while one deletes it: whichever order the
        # locks give, the file ends with no orphan and no failed apply.
        results = {}

        def child(i):
            txid = "c%d" % i
            code, _ = self.p.exec(txid, "INSERT INTO orders VALUES (?, 1, ?, 1)",
                                  [100 + i, "R-%d" % i])
            if code == 200:
                self.commit(txid)
                results[txid] = "committed"
            else:
                self.abort(txid)
                results[txid] = "aborted"

        threads = [threading.Thread(target=child, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        code, r = self.p.exec("del", "DELETE FROM customers WHERE id = 1")
        if code == 200:
            self.commit("del")
        else:
            self.abort("del")
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 8)
        self.check_database()


if __name__ == "__main__":
    unittest.main()
