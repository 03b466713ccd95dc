"""Flags of the ``poseidon`` challenge type, checked by a real Poseidon: a team's own flag is
correct, another team's correct flag is wrong and recorded as an incident (in the plugin, shown
to CTFd's admins, and in Poseidon), a wrong flag is wrong, and an attempt Poseidon cannot check
is not counted. In user mode the user is the owner."""
import io
import logging
import re
import unittest

import requests

from . import harness


def read_flag(poseidon, team, challenge):
    """The flag the team's running instance serves (read at its port published on 127.0.0.1)."""
    def running():
        _, body = poseidon.api("GET", "/v1/instances?team=%s&challenge=%s" % (team, challenge))
        live = [i for i in body["instances"] if i["status"] == "running"]
        return live[0] if live else None
    inst = harness.wait_until("%s running for %s" % (challenge, team), running, 180)
    port = inst["endpoints"][0]["published"]["port"]
    page = harness.wait_until("the instance page", lambda: requests.get("http://127.0.0.1:%d/" % port, timeout=5).text, 60)
    m = re.search(r"(poseidon|ctf)\{[0-9a-f]+\}", page)
    assert m, page
    return m.group(0)


class FlagChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.standin, cls.poseidon = harness.shared()
        cls.hello = cls.standin.add_challenge("Hello, web", "web-hello")
        cls.poseidon.wait_ready("web-hello")
        cls.log = io.StringIO()
        cls.handler = logging.StreamHandler(cls.log)
        logging.getLogger("poseidon.ctfd").addHandler(cls.handler)
        logging.getLogger("poseidon.ctfd").setLevel(logging.DEBUG)

    @classmethod
    def tearDownClass(cls):
        logging.getLogger("poseidon.ctfd").removeHandler(cls.handler)
        _, body = cls.poseidon.api("GET", "/v1/instances")
        for i in body["instances"]:
            if i["status"] not in ("stopped", "failed"):
                cls.poseidon.api("DELETE", "/v1/instances/%s" % i["id"])

    def counts(self, model):
        with self.standin.app.app_context():
            from CTFd.models import Fails, Solves
            from CTFd.plugins.poseidon.models import PoseidonIncident

            m = {"fails": Fails, "solves": Solves, "incidents": PoseidonIncident}[model]
            return m.query.filter_by(challenge_id=self.hello).count()

    def test_own_flag_correct_shared_flag_wrong_with_incident(self):
        red, blue = self.standin.teams["red"], self.standin.teams["blue"]
        alice = harness.Player(self.standin, "alice", self.hello)
        carol = harness.Player(self.standin, "carol", self.hello)
        self.assertEqual(alice.launch()[0], 202)
        alice.wait_status("running")
        flag = read_flag(self.poseidon, "t%d" % red, "web-hello")
        fails = self.counts("fails")
        # Team blue submits red's flag: wrong, and an incident both here and in Poseidon.
        code, body = carol.submit(flag)
        self.assertEqual((code, body["data"]["status"], body["data"]["message"]), (200, "incorrect", "Incorrect"))
        self.assertEqual(self.counts("fails"), fails + 1, "a shared flag counts as a wrong attempt")
        self.assertEqual(self.counts("incidents"), 1)
        _, remote = self.poseidon.api("GET", "/v1/flags/incidents")
        self.assertTrue(any(i["submittedBy"] == "t%d" % blue and i["owner"] == "t%d" % red and i["challenge"] == "web-hello"
                            for i in remote["incidents"]), remote)
        admin = self.standin.login("admin")
        overview = admin.get(self.standin.url + "/plugins/poseidon/api/v1/admin/overview", timeout=30).json()
        mine = [i for i in overview["incidents"] if i["challengeId"] == self.hello]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["submittedByName"], mine[0]["ownerName"], mine[0]["challenge"]), ("blue", "red", "Hello, web"))
        self.assertNotIn(flag, harness.dump(overview), "the flag itself is not shown again")
        # A wrong flag is wrong; red's own flag is correct (for alice and not for blue).
        self.assertEqual(alice.submit("poseidon{0000}")[1]["data"]["status"], "incorrect")
        self.assertEqual(alice.submit(flag)[1]["data"]["status"], "correct")
        self.assertEqual(self.counts("solves"), 1)
        self.assertEqual(harness.Player(self.standin, "bob", self.hello).submit(flag)[1]["data"]["status"], "already_solved")
        # The flag never reaches the plugin's log.
        self.assertNotIn(flag, self.log.getvalue())
        self.assertIn("flag sharing", self.log.getvalue())

    def test_unchecked_attempts_are_not_counted(self):
        admin = self.standin.login("admin")
        dead = "http://127.0.0.1:%d" % harness.free_port()
        admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"url": dead}, timeout=30)
        try:
            fails = self.counts("fails")
            code, body = harness.Player(self.standin, "dave", self.hello).submit("poseidon{deadbeef}")
            self.assertEqual(body["data"]["status"], "incorrect")
            self.assertIn("not counted", body["data"]["message"])
            self.assertEqual(self.counts("fails"), fails)
        finally:
            admin.post(self.standin.url + "/plugins/poseidon/api/v1/admin/settings", json={"url": self.poseidon.url}, timeout=30)


class UserMode(unittest.TestCase):
    """A second CTFd (user mode) on the same Poseidon, told apart by a principal prefix."""

    def test_users_own_instances_and_flags(self):
        _, poseidon = harness.shared()
        standin = harness.StandIn(harness.new_workdir(), user_mode="users")
        harness.register_cleanup(standin.stop)
        standin.seed({"solo": ["uma", "ulf"]}, users_mode=True)
        standin.configure(poseidon, prefix="um-")
        cid = standin.add_challenge("Fast", "fast-web")
        poseidon.wait_ready("fast-web")
        uma = harness.Player(standin, "uma", cid)
        ulf = harness.Player(standin, "ulf", cid)
        try:
            self.assertEqual(uma.launch()[0], 202)
            uma.wait_status("running")
            self.assertIsNone(ulf.state()[1]["instance"], "in user mode each user is their own owner")
            owner = "um-u%d" % standin.users["uma"]
            _, listed = poseidon.api("GET", "/v1/instances?team=%s&challenge=fast-web" % owner)
            self.assertEqual(len([i for i in listed["instances"] if i["status"] == "running"]), 1)
            flag = read_flag(poseidon, owner, "fast-web")
            self.assertEqual(ulf.submit(flag)[1]["data"]["status"], "incorrect")
            self.assertEqual(uma.submit(flag)[1]["data"]["status"], "correct")
            r = uma.session.get(standin.url + "/plugins/poseidon/auth", timeout=30)
            self.assertEqual(r.json()["team"], owner)
        finally:
            uma.act("stop")


if __name__ == "__main__":
    unittest.main()
