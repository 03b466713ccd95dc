"""Delegate mode: the plugin answers Poseidon's ``POSEIDON_AUTH_DELEGATE_URL`` from the CTFd
session, and Poseidon's forward-auth (asked the way Traefik asks it, with its own
X-Forwarded-* headers and the player's cookies) then admits the owning team only."""
import unittest

import requests

from . import harness
from .test_player import authz


def cookie_header(session):
    return "; ".join("%s=%s" % (c.name, c.value) for c in session.cookies)


class DelegateAnswers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.url = cls.standin.url + "/plugins/poseidon/auth"

    def ask(self, cookie=None):
        return requests.get(self.url, headers={"Cookie": cookie} if cookie else {}, allow_redirects=False, timeout=30)

    def test_signed_in_player_gets_team_and_user(self):
        alice = self.standin.login("alice")
        r = self.ask(cookie_header(alice))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["team"], "t%d" % self.standin.teams["red"])
        self.assertEqual(r.json()["user"], "u%d" % self.standin.users["alice"])
        self.assertEqual(r.headers.get("Cache-Control"), "no-store")

    def test_anonymous_and_unknown_sessions_are_401(self):
        self.assertEqual(self.ask().status_code, 401)
        self.assertEqual(self.ask("session=forged").status_code, 401)

    def test_admins_as_configured_and_banned_players(self):
        admin = self.standin.login("admin")
        self.assertEqual(self.ask(cookie_header(admin)).status_code, 401, "an admin without a team has no team to answer")
        admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"delegateAdmins": "deny"}, timeout=30)
        try:
            self.assertEqual(self.ask(cookie_header(admin)).status_code, 403)
        finally:
            admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"delegateAdmins": "team"}, timeout=30)
        with self.standin.app.app_context():
            from CTFd.models import Users, db

            dave = Users.query.filter_by(name="dave").first()
            session = self.standin.login("dave")
            dave.banned = True
            db.session.commit()
            try:
                self.assertEqual(self.ask(cookie_header(session)).status_code, 403)
            finally:
                dave = Users.query.filter_by(name="dave").first()
                dave.banned = False
                db.session.commit()


class ForwardAuth(unittest.TestCase):
    """Team B cannot open team A's instance: Poseidon (delegate mode) asks the plugin."""

    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.cid = cls.standin.add_challenge("Fast (delegate)", "fast-web")
        cls.poseidon.wait_ready("fast-web")

    def test_only_the_owning_team_is_admitted(self):
        alice = harness.Player(self.standin, "alice", self.cid)
        try:
            alice.launch()
            alice.wait_status("running")
            _, listed = self.poseidon.api("GET", "/v1/instances?team=t%d&challenge=fast-web" % self.standin.teams["red"])
            host = [i for i in listed["instances"] if i["status"] == "running"][0]["hostname"]
            url = "http://%s/" % host
            as_ = lambda name: authz(self.poseidon, url, cookie_header(self.standin.login(name)))
            self.assertEqual(as_("alice").status_code, 200, "the player who launched it")
            self.assertEqual(as_("bob").status_code, 200, "a teammate")
            denied = as_("carol")
            self.assertEqual(denied.status_code, 403, "another team")
            self.assertIn("text/html", denied.headers.get("content-type", ""))
            self.assertEqual(authz(self.poseidon, url).status_code, 401, "no session")
            self.assertEqual(authz(self.poseidon, url, "session=forged").status_code, 401, "a session CTFd does not know")
            # The instance's own page: a link from the panel works in delegate mode too.
            code, link = alice.act("access")
            self.assertEqual(code, 200)
            self.assertEqual(authz(self.poseidon, link["url"], cookie_header(self.standin.login("carol"))).status_code, 302,
                             "Poseidon's own link is the token, whoever holds it (hand it to no one)")
        finally:
            alice.act("stop")


if __name__ == "__main__":
    unittest.main()
