"""The admin side: the admin page and its API (settings with the key kept server-side, the
connection test, Poseidon's catalog, bindings, live instances, incidents), and creating and
editing a ``poseidon`` challenge through CTFd's challenge API and templates."""
import unittest

import requests

from . import harness


class AdminPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.admin = cls.standin.login("admin")
        cls.api = cls.standin.url + "/plugins/poseidon/api/v1/admin"

    def test_page_and_menu_entry(self):
        r = self.admin.get(self.standin.url + "/admin/poseidon", timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertIn('id="poseidon-admin"', r.text)
        self.assertIn("/plugins/poseidon/assets/admin.js", r.text)
        self.assertIn('href="/admin/poseidon">Poseidon</a>', r.text, "the admin menu entry")
        self.assertNotIn(self.poseidon.key, r.text)
        js = self.admin.get(self.standin.url + "/plugins/poseidon/assets/admin.js", timeout=30)
        self.assertEqual(js.status_code, 200)

    def test_players_are_kept_out(self):
        alice = self.standin.login("alice")
        r = alice.get(self.standin.url + "/admin/poseidon", allow_redirects=False, timeout=30)
        self.assertIn(r.status_code, (302, 403))
        for method, path in (("GET", "/overview"), ("POST", "/settings"), ("POST", "/test"), ("GET", "/challenges"),
                             ("POST", "/bindings"), ("GET", "/instances"), ("GET", "/incidents")):
            r = alice.request(method, self.api + path, json={}, timeout=30)
            self.assertEqual(r.status_code, 403, path)
            self.assertNotIn(self.poseidon.key, r.text)

    def test_key_is_write_only(self):
        r = self.admin.get(self.api + "/overview", timeout=30)
        self.assertEqual(r.status_code, 200)
        s = r.json()["settings"]
        self.assertEqual((s["url"], s["keySet"], s["keyFromEnv"]), (self.poseidon.url, True, False))
        self.assertEqual(len(s["keyFingerprint"]), 8)
        self.assertNotIn(self.poseidon.key, r.text)
        # Saving without a key keeps the stored one.
        r = self.admin.post(self.api + "/settings", json={"url": self.poseidon.url, "prefix": ""}, timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertNotIn(self.poseidon.key, r.text)
        self.assertTrue(r.json()["settings"]["keySet"])
        self.assertEqual(self.admin.post(self.api + "/test", json={}, timeout=30).json()["ok"], True)

    def test_settings_are_validated(self):
        for body, text in (({"url": "ftp://x"}, "Poseidon URL"), ({"apiKey": "short"}, "API key"),
                           ({"prefix": "bad prefix!"}, "prefix"), ({"waitSeconds": 500}, "Live updates"),
                           ({"delegateAdmins": "everyone"}, "Admins")):
            r = self.admin.post(self.api + "/settings", json=body, timeout=30)
            self.assertEqual(r.status_code, 400, body)
            self.assertIn(text, r.json()["message"])
        self.assertEqual(self.admin.get(self.api + "/overview", timeout=30).json()["settings"]["url"], self.poseidon.url)
        r = requests.post(self.api + "/settings", json={"url": "http://evil"}, cookies=self.admin.cookies, timeout=30)
        self.assertEqual(r.status_code, 403, "no CSRF nonce, no change")

    def test_connection_test_reports_version_and_catalog(self):
        r = self.admin.post(self.api + "/test", json={}, timeout=30)
        body = r.json()
        self.assertTrue(body["ok"], body)
        self.assertTrue(body["adminKey"])
        self.assertGreaterEqual(body["catalog"]["challenges"], 4)
        self.assertIn("ready", body["catalog"]["states"])
        self.assertGreaterEqual(body["catalog"]["invalid"], 1, "the broken test challenge")
        self.assertNotIn(self.poseidon.key, r.text)
        _, version = self.poseidon.api("GET", "/v1/version")
        if version and "version" in version:
            self.assertEqual(body["version"], version["version"])

    def test_connection_test_names_the_problem(self):
        wrong = requests.Session()
        wrong.cookies.update(self.admin.cookies)
        wrong.headers["CSRF-Token"] = self.admin.nonce
        try:
            wrong.post(self.api + "/settings", json={"apiKey": "wrong-key-0123456789abcdef"}, timeout=30)
            body = wrong.post(self.api + "/test", json={}, timeout=30).json()
            self.assertFalse(body["ok"])
            self.assertIn("refused the API key", body["message"])
            self.assertNotIn("wrong-key-0123456789abcdef", harness.dump(body))
            wrong.post(self.api + "/settings", json={"url": "http://127.0.0.1:%d" % harness.free_port()}, timeout=30)
            body = wrong.post(self.api + "/test", json={}, timeout=30).json()
            self.assertFalse(body["ok"])
            self.assertIn("unreachable", body["message"])
        finally:
            self.standin.configure(self.poseidon)

    def test_catalog_bindings_and_instances(self):
        cid = self.standin.add_challenge("Bind me", "fast-web")
        answer = self.admin.get(self.api + "/challenges", timeout=30).json()
        catalog = answer["challenges"]
        broken = [b for b in answer["invalid"] if b["file"].endswith("broken/challenge.yaml")]
        self.assertEqual(len(broken), 1, answer["invalid"])
        self.assertIn("expose.0.port", " ".join(broken[0]["errors"]))
        ids = {c["id"]: c for c in catalog}
        self.assertIn("web-hello", ids)
        self.assertEqual(ids["solo-web"]["scope"], "user")
        self.assertEqual(ids["tcp-echo"]["expose"], [{"name": "pwn", "protocol": "tcp"}])
        r = self.admin.post(self.api + "/bindings", json={"challengeId": cid, "poseidonId": "tcp-echo"}, timeout=30)
        self.assertEqual(r.status_code, 200)
        bound = {b["id"]: b for b in self.admin.get(self.api + "/overview", timeout=30).json()["bindings"]}
        self.assertEqual(bound[cid]["poseidonId"], "tcp-echo")
        self.assertEqual(self.admin.post(self.api + "/bindings", json={"challengeId": cid, "poseidonId": "Bad Id"}, timeout=30).status_code, 400)
        # Live instances, with CTFd team names, and an admin stop.
        self.poseidon.wait_ready("tcp-echo")
        dave = harness.Player(self.standin, "dave", cid)
        dave.launch()
        dave.wait_status("running")
        listed = self.admin.get(self.api + "/instances", timeout=30).json()["instances"]
        mine = [i for i in listed if i["team"] == "t%d" % self.standin.teams["green"] and i["challenge"] == "tcp-echo"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["teamName"], "green")
        r = self.admin.post(self.api + "/instances/%s/stop" % mine[0]["id"], json={}, timeout=30)
        self.assertEqual(r.status_code, 200)
        harness.wait_until("stopped by the admin", lambda: dave.state()[1]["instance"] is None, 30)
        self.assertEqual(self.admin.post(self.api + "/instances/not-an-id/stop", json={}, timeout=30).status_code, 400)


class ChallengeType(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.admin = cls.standin.login("admin")

    def test_create_update_and_templates(self):
        base = {"name": "Typed", "category": "web", "description": "d", "value": 50, "state": "visible", "type": "poseidon"}
        r = self.admin.post(self.standin.url + "/api/v1/challenges", json=dict(base, poseidon_id="Not Valid"), timeout=30)
        self.assertEqual(r.status_code, 500)
        self.assertIn("Poseidon challenge id", r.json()["errors"][""][0])
        r = self.admin.post(self.standin.url + "/api/v1/challenges", json=dict(base, poseidon_id="web-hello"), timeout=30)
        cid = r.json()["data"]["id"]
        self.assertEqual(r.json()["data"]["type"], "poseidon")
        page = self.admin.get(self.standin.url + "/admin/challenges/%d" % cid, timeout=30)
        self.assertIn('name="poseidon_id"', page.text)
        self.assertIn('value="web-hello"', page.text)
        r = self.admin.patch(self.standin.url + "/api/v1/challenges/%d" % cid, json={"poseidon_id": "fast-web", "value": 60}, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        with self.standin.app.app_context():
            from CTFd.plugins.poseidon.models import PoseidonChallenge

            c = PoseidonChallenge.query.filter_by(id=cid).first()
            self.assertEqual((c.poseidon_id, c.value), ("fast-web", 60))
        self.assertEqual(self.admin.patch(self.standin.url + "/api/v1/challenges/%d" % cid, json={"poseidon_id": "../x"}, timeout=30).status_code, 500)
        new = self.admin.get(self.standin.url + "/admin/challenges/new/poseidon", timeout=30)
        self.assertIn('name="poseidon_id"', new.text)
        self.assertIn('value="poseidon" name="type"', new.text)
        for asset in ("create.js", "update.js", "view.js", "panel.css"):
            self.assertEqual(self.admin.get(self.standin.url + "/plugins/poseidon/assets/" + asset, timeout=30).status_code, 200, asset)
        # The view: CTFd's modal with the panel inside, for the challenge's own id only.
        view = requests.Session()
        view.cookies.update(self.standin.login("alice").cookies)
        data = view.get(self.standin.url + "/api/v1/challenges/%d" % cid, timeout=30).json()["data"]
        self.assertIn('class="poseidon-panel" data-poseidon-challenge="%d"' % cid, data["view"])
        self.assertIn('id="challenge-input"', data["view"])
        self.assertEqual(data["type_data"]["scripts"]["view"], "/plugins/poseidon/assets/view.js")
        self.assertNotIn("fast-web", data["view"], "the binding is the admins' business")
        r = self.admin.delete(self.standin.url + "/api/v1/challenges/%d" % cid, headers={"Content-Type": "application/json"}, timeout=30)
        self.assertEqual(r.status_code, 200)
        with self.standin.app.app_context():
            from CTFd.plugins.poseidon.models import PoseidonChallenge

            self.assertIsNone(PoseidonChallenge.query.filter_by(id=cid).first())


if __name__ == "__main__":
    unittest.main()
