"""Pure logic of the plugin (no server): owners, what an owner's browser sees, refusal messages.
The CTFd-dependent modules are not imported here; service.py and client.py stand alone."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from poseidon import client as pclient  # noqa: E402
from poseidon import service  # noqa: E402

NOW = 1_800_000_000.0


def inst(**kw):
    base = {"id": "a" * 24, "challenge": "web", "team": "t1", "status": "running", "desired": "running",
            "hostname": "0123456789abcdef.web.ctf.test", "generation": 1, "renewals": 0,
            "createdAt": service.iso(NOW - 60), "expiresAt": service.iso(NOW + 600), "maxExpiresAt": service.iso(NOW + 3600),
            "endpoints": [{"name": "web", "protocol": "http", "port": 8080, "hostname": "0123456789abcdef.web.ctf.test",
                           "url": "http://0123456789abcdef.web.ctf.test/", "published": {"host": "127.0.0.1", "port": 49000}}]}
    base.update(kw)
    return base


ENTRY = {"id": "web", "scope": "team", "ttl": {"defaultSeconds": 600, "maxSeconds": 3600, "renewals": 2}}


class Owners(unittest.TestCase):
    def test_team_mode(self):
        o = service.owner_for(7, 3, True)
        self.assertEqual((o.team, o.user), ("t3", "u7"))
        self.assertIsNone(service.owner_for(7, None, True), "a player without a team has no owner in team mode")

    def test_user_mode_and_prefix(self):
        o = service.owner_for(7, None, False, "ctf25-")
        self.assertEqual((o.team, o.user), ("ctf25-u7", "ctf25-u7"))
        self.assertRegex(o.team, service.PRINCIPAL)


class Present(unittest.TestCase):
    def test_hides_ids_hostnames_and_published_ports(self):
        shown = service.present(inst(), ENTRY, NOW)
        text = repr(shown)
        for secretish in ("a" * 24, "0123456789abcdef", "49000", "127.0.0.1"):
            self.assertNotIn(secretish, text)
        self.assertEqual(shown["endpoints"], [{"name": "web", "protocol": "http"}])
        self.assertEqual(shown["renewalsLeft"], 2)
        self.assertTrue(shown["renew"]["allowed"])

    def test_tcp_connection_strings(self):
        shown = service.present(inst(endpoints=[{"name": "pwn", "protocol": "tcp", "port": 9000, "hostname": "h",
                                                 "url": "tls://0123456789abcdef.pwn.ctf.test:443"},
                                                {"name": "ssh", "protocol": "tcp", "port": 22, "hostname": "h", "url": "tcp://ctf.test:30001"}]), ENTRY, NOW)
        self.assertEqual(shown["endpoints"][0]["command"], "ncat --ssl 0123456789abcdef.pwn.ctf.test 443")
        self.assertIn("openssl s_client", shown["endpoints"][0]["alternative"])
        self.assertEqual(shown["endpoints"][1]["command"], "nc ctf.test 30001")

    def test_queued_shows_position_and_estimate(self):
        shown = service.present(inst(status="queued", endpoints=[], queue={"position": 3, "estimatedStartAt": service.iso(NOW + 120)}), ENTRY, NOW)
        self.assertEqual(shown["queue"]["position"], 3)
        self.assertEqual(shown["statusText"], "Waiting for a free slot")
        self.assertFalse(shown["renew"]["allowed"])
        self.assertFalse(shown["canRestart"])
        self.assertTrue(shown["canStop"])

    def test_renew_reasons(self):
        windowed = dict(ENTRY, ttl={"defaultSeconds": 600, "maxSeconds": 3600, "renewals": 2, "renewWindowSeconds": 120})
        r = service.present(inst(), windowed, NOW)["renew"]
        self.assertFalse(r["allowed"])
        self.assertEqual(r["opensAt"], service.iso(NOW + 480))
        self.assertIn("2 min", r["reason"])
        self.assertTrue(service.present(inst(expiresAt=service.iso(NOW + 100)), windowed, NOW)["renew"]["allowed"])
        r = service.present(inst(renewals=2), ENTRY, NOW)["renew"]
        self.assertFalse(r["allowed"])
        self.assertIn("No renewals left", r["reason"])
        r = service.present(inst(expiresAt=service.iso(NOW + 3600)), ENTRY, NOW)["renew"]
        self.assertIn("maximum lifetime", r["reason"])

    def test_etag_ignores_the_clock(self):
        a = service.present(inst(), dict(ENTRY, ttl=dict(ENTRY["ttl"], renewWindowSeconds=120)), NOW)
        b = service.present(inst(), dict(ENTRY, ttl=dict(ENTRY["ttl"], renewWindowSeconds=120)), NOW + 500)
        self.assertEqual(service._etag(a), service._etag(b))
        self.assertNotEqual(service._etag(a), service._etag(service.present(inst(status="starting"), ENTRY, NOW)))

    def test_liveness_follows_poseidon(self):
        self.assertTrue(service.is_live(inst(), NOW))
        self.assertTrue(service.is_live(inst(status="queued", expiresAt=service.iso(NOW - 5)), NOW))
        self.assertFalse(service.is_live(inst(expiresAt=service.iso(NOW - 1)), NOW))
        self.assertFalse(service.is_live(inst(desired="stopped", status="stopping"), NOW))
        self.assertFalse(service.is_live(inst(status="failed"), NOW))


class Explain(unittest.TestCase):
    def problem(self, code, status=409, body=None, retry=None):
        return pclient.PoseidonProblem(status, code, "detail naming t9 and a1b2c3 internals", body or {}, retry)

    def test_every_refusal_has_a_plain_message_without_the_detail(self):
        cases = {
            "E_TEAM_LIMIT": ("already runs 2 instances", 409),
            "E_RATE_LIMITED": ("Try again in 17 s", 429),
            "E_UNDER_LOAD": ("paused while the platform is busy", 409),
            "E_RENEW_WINDOW": ("not open yet", 409),
            "E_RENEW_LIMIT": ("cannot be renewed any more", 409),
            "E_NOT_RUNNING": ("Launch a new one", 409),
            "E_IMAGE_NOT_READY": ("image is not ready", 409),
            "E_CHALLENGE_NOT_FOUND": ("not available", 409),
            "E_UNAUTHORIZED": ("refused the platform's key", 502),
            "E_STORE": ("unreachable", 503),
            "E_BAD_REQUEST": ("refused the request", 502),
        }
        body = {"instances": [{"challenge": "web"}, {"challenge": "pwn"}]}
        for code, (text, status) in cases.items():
            r = service.explain(self.problem(code, 503 if code == "E_STORE" else 409, body, 17), names=lambda c: "Name of " + c, action="launch")
            self.assertIn(text, r.message, code)
            self.assertEqual(r.status, status, code)
            self.assertNotIn("t9", r.message)
            self.assertNotIn("a1b2c3", r.message)
        limit = service.explain(self.problem("E_TEAM_LIMIT", body=body), names=lambda c: "Name of " + c)
        self.assertIn("Name of web, Name of pwn", limit.message)
        self.assertEqual(service.explain(pclient.PoseidonUnavailable("unreachable (ConnectionRefusedError)")).message, service.UNREACHABLE)


class ClientSafety(unittest.TestCase):
    def test_key_never_in_repr_or_errors(self):
        key = "super-secret-key-0123456789"
        c = pclient.Client("http://127.0.0.1:9", key, timeout=1)
        self.assertNotIn(key, repr(c))
        with self.assertRaises(pclient.PoseidonUnavailable) as ctx:
            c.challenges()
        self.assertNotIn(key, str(ctx.exception))
        self.assertIn("unreachable", str(ctx.exception))

    def test_a_server_that_is_down_fails_fast_for_a_few_seconds(self):
        c = pclient.Client("http://127.0.0.1:9", "k" * 20, timeout=1)
        with self.assertRaises(pclient.PoseidonUnavailable) as first:
            c.challenges()
        self.assertIn("ConnectionRefusedError", str(first.exception))
        with self.assertRaises(pclient.PoseidonUnavailable) as second:
            c.instances(team="t1")
        self.assertIn("recently", str(second.exception))
        pclient.reset_breaker()
        with self.assertRaises(pclient.PoseidonUnavailable) as third:
            c.challenges()
        self.assertIn("ConnectionRefusedError", str(third.exception))

    def test_configuration_is_checked(self):
        for url, key in (("", "k" * 20), ("http://x", ""), ("ftp://x", "k" * 20), ("http://", "k" * 20)):
            with self.assertRaises(pclient.NotConfigured):
                pclient.Client(url, key)
        c = pclient.Client("https://poseidon.example.org/api/", "k" * 20)
        self.assertEqual(c.base_url, "https://poseidon.example.org/api")

    def test_flags_out_of_bounds_are_wrong_without_asking(self):
        class Boom:
            def verify_flag(self, *a):
                raise AssertionError("must not be called")
        owner = service.Owner("t1", "u1")
        self.assertFalse(service.verify_flag(Boom(), owner, "web", "").correct)
        self.assertFalse(service.verify_flag(Boom(), owner, "web", "x" * 513).correct)


if __name__ == "__main__":
    unittest.main()
