"""The player routes behind the panel, against a real Poseidon (Docker, embedded store) through
the CTFd stand-in: launch, live status, access links, renew, restart, stop, team isolation,
refusals with plain messages, CSRF, and Poseidon being down while CTFd keeps working."""
import re
import time
import unittest

import requests

from . import harness

ID_RE = re.compile(r"\b[0-9a-f]{24}\b")


def authz(poseidon, url, cookie=None, method="GET"):
    """What Traefik's forward-auth asks Poseidon for a request to ``url`` (its own X-Forwarded-*)."""
    m = re.match(r"^https?://([^/]+)(/.*)$", url)
    headers = {"X-Forwarded-Host": m.group(1), "X-Forwarded-Uri": m.group(2), "X-Forwarded-Method": method,
               "X-Forwarded-Proto": "http", "Accept": "text/html"}
    if cookie:
        headers["Cookie"] = cookie
    return requests.get(poseidon.url + "/v1/authz", headers=headers, allow_redirects=False, timeout=30)


class PlayerRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.fast = cls.standin.add_challenge("Fast web", "fast-web")
        cls.window = cls.standin.add_challenge("Windowed", "window-web")
        cls.solo = cls.standin.add_challenge("Solo", "solo-web")
        cls.tcp = cls.standin.add_challenge("Echo", "tcp-echo")
        cls.hidden = cls.standin.add_challenge("Hidden", "fast-web", state="hidden")
        cls.unbound = cls.standin.add_challenge("Unbound", "fast-web")
        with cls.standin.app.app_context():
            from CTFd.models import db
            from CTFd.plugins.poseidon.models import PoseidonChallenge

            PoseidonChallenge.query.filter_by(id=cls.unbound).first().poseidon_id = ""
            db.session.commit()
        for c in ("fast-web", "window-web", "solo-web", "tcp-echo"):
            cls.poseidon.wait_ready(c)
        cls.seen = []

    def tearDown(self):
        # Leave no live instance behind for the next test (the team limit is 2).
        _, body = self.poseidon.api("GET", "/v1/instances")
        for i in body["instances"]:
            if i["status"] not in ("stopped", "failed"):
                self.poseidon.api("DELETE", "/v1/instances/%s" % i["id"])
        harness.wait_until("no live instance", lambda: all(
            i["status"] in ("stopped", "failed") or i["desired"] == "stopped" for i in self.poseidon.api("GET", "/v1/instances")[1]["instances"]), 60)

    def record(self, *bodies):
        self.seen.extend(harness.dump(b) for b in bodies)
        return bodies

    def assertNoSecrets(self, *bodies):
        for b in bodies:
            text = harness.dump(b)
            for s in harness.secrets_of(self.poseidon):
                self.assertNotIn(s, text)
            self.assertIsNone(ID_RE.search(text.replace('"etag"', "")), "no instance id reaches the browser: %s" % text)

    # -- the main story ----------------------------------------------------------------------

    def test_lifecycle_launch_status_open_renew_restart_stop(self):
        alice = harness.Player(self.standin, "alice", self.fast)
        code, body = alice.state()
        self.assertEqual((code, body["instance"]), (200, None))
        code, launched = alice.launch()
        self.assertEqual(code, 202, launched)
        self.assertIn(launched["instance"]["status"], ("pending", "starting", "running"))
        # Live status without polling: a long-poll answers as soon as the instance changes.
        started = time.monotonic()
        code, changed = alice.state(wait=25, known=launched["etag"])
        self.assertEqual(code, 200)
        if changed["etag"] == launched["etag"]:
            self.fail("the long-poll returned without news after %.1fs" % (time.monotonic() - started))
        self.assertLess(time.monotonic() - started, 24, "answered on the change, not at the deadline")
        running = alice.wait_status("running")
        inst = running["instance"]
        self.assertEqual(inst["endpoints"], [{"name": "web", "protocol": "http"}])
        self.assertEqual(inst["renewalsLeft"], 2)
        self.assertTrue(inst["renew"]["allowed"])
        # A long-poll with nothing new waits (bounded) and returns the same state.
        started = time.monotonic()
        _, same = alice.state(wait=3, known=running["etag"])
        self.assertEqual(same["etag"], running["etag"])
        self.assertGreaterEqual(time.monotonic() - started, 2.5)
        # Open: a fresh access link to the team's own instance, which Poseidon's forward-auth exchanges.
        code, link = alice.act("access", {"endpoint": "web"})
        self.assertEqual(code, 200, link)
        self.assertRegex(link["url"], r"^http://[0-9a-f]{16}\.fast-web\.ctf\.test/\?poseidon_access=l\.")
        _, listed = self.poseidon.api("GET", "/v1/instances?team=t%d&challenge=fast-web" % self.standin.teams["red"])
        live = [i for i in listed["instances"] if i["status"] == "running"]
        self.assertEqual(len(live), 1)
        self.assertIn(live[0]["hostname"], link["url"])
        gate = authz(self.poseidon, link["url"])
        self.assertEqual(gate.status_code, 302)
        self.assertTrue(gate.headers.get("set-cookie", "").startswith("poseidon="), gate.headers)
        # Renew: counted, then refused with a plain message once none are left.
        code, renewed = alice.act("renew")
        self.assertEqual((code, renewed["message"], renewed["instance"]["renewals"]), (200, "Renewed.", 1))
        self.assertEqual(alice.act("renew")[0], 200)
        code, refused = alice.act("renew")
        self.assertEqual(code, 409)
        self.assertIn("cannot be renewed any more", refused["message"])
        _, now = alice.state()
        self.assertFalse(now["instance"]["renew"]["allowed"])
        self.assertIn("No renewals left", now["instance"]["renew"]["reason"])
        # Restart: a fresh container (next generation), same instance.
        code, restarted = alice.act("restart")
        self.assertEqual(code, 200, restarted)
        self.assertEqual(restarted["instance"]["generation"], 2)
        alice.wait_status("running")
        # A teammate sees and controls the same team instance.
        bob = harness.Player(self.standin, "bob", self.fast)
        _, seen_by_bob = bob.state()
        self.assertEqual(seen_by_bob["instance"]["generation"], 2)
        # Stop.
        code, stopped = bob.act("stop")
        self.assertEqual((code, stopped["instance"], stopped["message"]), (200, None, "Stopped."))
        _, after = self.poseidon.api("GET", "/v1/instances/%s" % live[0]["id"])
        self.assertEqual(after["desired"], "stopped")
        self.assertEqual(authz(self.poseidon, link["url"]).status_code in (401, 403, 410), True, "a stopped instance is not reachable")
        self.assertNoSecrets(launched, changed, running, link, renewed, refused, restarted, stopped)

    def test_launch_twice_gives_the_same_instance(self):
        carol = harness.Player(self.standin, "carol", self.fast)
        _, first = carol.launch()
        _, second = carol.launch()
        self.assertEqual(first["instance"]["createdAt"], second["instance"]["createdAt"])
        _, listed = self.poseidon.api("GET", "/v1/instances?team=t%d&challenge=fast-web" % self.standin.teams["blue"])
        self.assertEqual(len([i for i in listed["instances"] if i["status"] != "stopped"]), 1)

    # -- isolation ---------------------------------------------------------------------------

    def test_other_teams_see_and_touch_nothing_of_yours(self):
        alice = harness.Player(self.standin, "alice", self.fast)
        carol = harness.Player(self.standin, "carol", self.fast)
        alice.launch()
        alice.wait_status("running")
        _, theirs = carol.state()
        self.assertIsNone(theirs["instance"], "team blue has no instance of its own")
        for action in ("renew", "restart", "stop", "access"):
            code, body = carol.act(action)
            self.assertEqual(code, 409, (action, body))
            self.assertIn("Launch one first", body["message"])
        _, still = alice.state()
        self.assertEqual((still["instance"]["status"], still["instance"]["renewals"], still["instance"]["generation"]), ("running", 0, 1))
        # The URL's challenge id selects a challenge, never an instance: ids are not accepted anywhere.
        code, _ = carol.act("stop", {"id": "0" * 24, "team": "t%d" % self.standin.teams["red"]})
        self.assertEqual(code, 409)
        self.assertEqual(alice.state()[1]["instance"]["status"], "running")

    def test_user_scoped_challenge_gives_each_teammate_their_own(self):
        alice = harness.Player(self.standin, "alice", self.solo)
        bob = harness.Player(self.standin, "bob", self.solo)
        alice.launch()
        self.assertIsNone(bob.state()[1]["instance"], "alice's user-scoped instance is not bob's")
        bob.launch()
        a = alice.wait_status("running")
        b = bob.wait_status("running")
        self.assertNotEqual(a["instance"]["createdAt"], b["instance"]["createdAt"])
        _, listed = self.poseidon.api("GET", "/v1/instances?team=t%d&challenge=solo-web" % self.standin.teams["red"])
        self.assertEqual(sorted(i["user"] for i in listed["instances"] if i["status"] == "running"),
                         sorted(["u%d" % self.standin.users["alice"], "u%d" % self.standin.users["bob"]]))

    # -- refusals ----------------------------------------------------------------------------

    def test_renew_outside_the_window_is_disabled_with_its_reason(self):
        dave = harness.Player(self.standin, "dave", self.window)
        dave.launch()
        body = dave.wait_status("running")
        renew = body["instance"]["renew"]
        self.assertFalse(renew["allowed"])
        self.assertIn("Renewal opens 2 min before expiry", renew["reason"])
        self.assertIn("opensAt", renew)
        code, refused = dave.act("renew")
        self.assertEqual(code, 409)
        self.assertIn("not open yet", refused["message"])

    def test_team_limit_names_the_team_instances(self):
        erin = [harness.Player(self.standin, "erin", c) for c in (self.fast, self.window, self.tcp)]
        self.assertEqual(erin[0].launch()[0], 202)
        self.assertEqual(erin[1].launch()[0], 202)
        code, body = erin[2].launch()
        self.assertEqual(code, 409)
        self.assertIn("already runs 2 instances", body["message"])
        self.assertIn("Fast web", body["message"])
        self.assertIn("Windowed", body["message"])

    def test_rate_limit_says_when_to_retry(self):
        erin = harness.Player(self.standin, "erin", self.fast)
        erin.launch()
        erin.wait_status("running")
        codes = []
        for _ in range(4):
            r = erin.session.post(erin._url("/restart"), json={}, timeout=60)
            codes.append(r.status_code)
            if r.status_code == 429:
                self.assertRegex(r.json()["message"], r"Too many restart requests from your team\. Try again in \d+ s\.")
                self.assertTrue(r.headers.get("Retry-After", "").isdigit())
        self.assertEqual(codes, [200, 200, 200, 429])

    def test_tcp_endpoint_shows_the_connection_string(self):
        dave = harness.Player(self.standin, "dave", self.tcp)
        dave.launch()
        body = dave.wait_status("running")
        ep = body["instance"]["endpoints"]
        self.assertEqual(len(ep), 1)
        self.assertRegex(ep[0]["command"], r"^ncat --ssl [0-9a-f]{16}\.tcp-echo\.ctf\.test 80$")
        code, refused = dave.act("access", {"endpoint": "pwn"})
        self.assertEqual(code, 400)
        self.assertEqual(refused["message"], "This endpoint cannot be opened in a browser.")
        code, refused = dave.act("access", {"endpoint": "Not A Label"})
        self.assertEqual((code, refused["message"]), (400, "Unknown endpoint."))

    # -- who may ask -------------------------------------------------------------------------

    def test_signed_out_teamless_hidden_and_unbound(self):
        anon = requests.Session()
        r = anon.get("%s/plugins/poseidon/api/v1/challenges/%d/instance" % (self.standin.url, self.fast), timeout=30)
        self.assertEqual((r.status_code, r.json()["message"]), (403, "Sign in to use instances."))
        admin = harness.Player(self.standin, "admin", self.fast)
        code, body = admin.state()
        self.assertEqual((code, body["message"]), (403, "Join a team to use instances."))
        alice_hidden = harness.Player(self.standin, "alice", self.hidden)
        self.assertEqual(alice_hidden.state()[0], 404)
        self.assertEqual(alice_hidden.launch()[0], 404)
        code, body = harness.Player(self.standin, "alice", self.unbound).launch()
        self.assertEqual(code, 409)
        self.assertIn("no instance configured", body["message"])
        self.assertEqual(harness.Player(self.standin, "alice", 99999).state()[0], 404)

    def test_state_changes_need_the_csrf_nonce(self):
        alice = harness.Player(self.standin, "alice", self.fast)
        bare = requests.Session()
        bare.cookies.update(alice.session.cookies)
        for suffix in ("", "/stop", "/renew", "/restart", "/access"):
            r = bare.post(alice._url(suffix), json={}, timeout=30)
            self.assertEqual(r.status_code, 403, suffix)
            r = bare.post(alice._url(suffix), json={}, headers={"CSRF-Token": "0" * 64}, timeout=30)
            self.assertEqual(r.status_code, 403, suffix)
            r = bare.post(alice._url(suffix), data={"x": "1"}, timeout=30)
            self.assertEqual(r.status_code, 403, suffix)
        self.assertIsNone(alice.state()[1]["instance"], "nothing was launched")
        self.assertEqual(bare.get(alice._url(), timeout=30).status_code, 200, "reads need no nonce")

    def test_poseidon_unreachable_is_plain_and_ctfd_keeps_working(self):
        admin = self.standin.login("admin")
        dead = "http://127.0.0.1:%d" % harness.free_port()
        r = admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"url": dead}, timeout=30)
        self.assertEqual(r.status_code, 200)
        try:
            alice = harness.Player(self.standin, "alice", self.fast)
            for code, body in (alice.state(), alice.launch(), alice.act("renew"), alice.act("access")):
                self.assertEqual(code, 503)
                self.assertEqual(body["message"], "The instance service is unreachable right now. CTFd keeps working; try again in a minute.")
            started = time.monotonic()
            code, _ = alice.state(wait=5, known="none")
            self.assertEqual(code, 503)
            self.assertLess(time.monotonic() - started, 4, "no waiting on a server that is down")
            self.assertEqual(alice.session.get(self.standin.url + "/challenges", timeout=30).status_code, 200)
            self.assertEqual(alice.session.get(self.standin.url + "/api/v1/challenges/%d" % self.fast, timeout=30).status_code, 200)
        finally:
            r = admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"url": self.poseidon.url}, timeout=30)
            self.assertEqual(r.status_code, 200)
        self.assertEqual(harness.Player(self.standin, "alice", self.fast).state()[0], 200)


class Queue(unittest.TestCase):
    """A full cluster (capacity 1, its own Poseidon): the panel shows the place in line and an
    estimated start, and hears about the start as soon as a place frees up."""

    def test_queued_then_started_when_a_place_frees(self):
        work = harness.new_workdir()
        standin = harness.StandIn(work)
        harness.register_cleanup(standin.stop)
        standin.seed({"red": ["alice"], "blue": ["carol"]})
        poseidon = harness.start_poseidon({"POSEIDON_CAPACITY": "1"}, work)
        standin.configure(poseidon)
        cid = standin.add_challenge("Fast", "fast-web")
        poseidon.wait_ready("fast-web")
        alice = harness.Player(standin, "alice", cid)
        carol = harness.Player(standin, "carol", cid)
        try:
            alice.launch()
            alice.wait_status("running")
            code, body = carol.launch()
            self.assertEqual(code, 202)
            inst = body["instance"]
            self.assertEqual(inst["status"], "queued")
            self.assertEqual(inst["statusText"], "Waiting for a free slot")
            self.assertEqual(inst["queue"]["position"], 1)
            self.assertIn("estimatedStartAt", inst["queue"])
            self.assertFalse(inst["canRestart"])
            self.assertEqual(carol.act("renew")[0], 409)
            alice.act("stop")
            started = time.monotonic()
            code, moved = carol.state(wait=25, known=body["etag"])
            self.assertEqual(code, 200)
            self.assertNotEqual(moved["instance"]["status"], "queued")
            self.assertLess(time.monotonic() - started, 20)
            carol.wait_status("running")
        finally:
            carol.act("stop")
            alice.act("stop")


class NotConfigured(unittest.TestCase):
    def test_a_fresh_install_says_so(self):
        standin = harness.StandIn(harness.new_workdir())
        harness.register_cleanup(standin.stop)
        standin.seed({"red": ["alice"]})
        cid = standin.add_challenge("Web", "web-hello")
        alice = harness.Player(standin, "alice", cid)
        for code, body in (alice.state(), alice.launch()):
            self.assertEqual((code, body["message"]), (503, "Instances are not set up yet. Tell the organisers."))
        code, body = alice.submit("poseidon{anything}")
        self.assertEqual(body["data"]["status"], "incorrect")
        self.assertIn("not counted", body["data"]["message"])


if __name__ == "__main__":
    unittest.main()
