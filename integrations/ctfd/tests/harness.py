"""Test harness: a real Poseidon (``poseidon serve --dev`` from this repository, on the real
Docker engine, embedded store) and the CTFd stand-in (tests/standin) with the plugin folder
copied into its plugins directory, exactly as an operator installs it.

One Poseidon and one stand-in serve every test module of a run (``shared()``). Poseidon runs in
delegate mode, pointed at the stand-in's ``/plugins/poseidon/auth``; its own access links work
in that mode too, so the same server covers both. Everything Poseidon creates carries the label
``poseidon.managed-by=<manager id>`` (``poseidon-test-ctfd-<random>``) and is removed by that label
when the run ends, whether the tests passed or not (atexit, and SIGTERM/SIGINT turned into exit).
"""
import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
CTFD_DIR = os.path.dirname(HERE)
PLUGIN_SRC = os.path.join(CTFD_DIR, "poseidon")
REPO = os.path.dirname(os.path.dirname(CTFD_DIR))
# The Poseidon checkout to run (this repository unless told otherwise, e.g. a clean snapshot).
ROOT = os.environ.get("POSEIDON_SOURCE_DIR") or REPO
sys.path.insert(0, os.path.join(HERE, "standin"))

BASE_DOMAIN = "ctf.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(Exception):
    """Raised inside a ``wait_until`` condition: stop waiting at once."""


def wait_until(what, fn, timeout=60.0, every=0.2):
    """Polls ``fn`` until it returns something other than None/False (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value not in (None, False):
                return value
        except (Fatal, AssertionError):
            raise
        except Exception as err:  # noqa: BLE001 - reported on timeout
            last = err
        time.sleep(every)
    raise AssertionError("timed out after %ss waiting for %s%s" % (timeout, what, (": %r" % last) if last else ""))


# -- challenges ---------------------------------------------------------------------------------

def _web(cid, extra="", scope="team"):
    return "\n".join([
        "id: %s" % cid, "name: %s" % cid, "image: busybox:1.35",
        'command: [sh, -c, "mkdir -p /tmp/w && echo \\"<p>Your flag: $FLAG</p>\\" > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"]',
        "expose: [{ name: web, port: 8080, protocol: http }]",
        "resources: { cpu: 0.25, memory: 32m, pids: 32 }",
        "healthcheck: { type: http, port: web, path: / }",
        'flag: { env: FLAG, format: "ctf{%s}" }',
        "scope: %s" % scope, extra, "",
    ])


TEST_CHALLENGES = {
    "fast-web": _web("fast-web", "ttl: { default: 10m, max: 30m, renewals: 2 }"),
    "window-web": _web("window-web", "ttl: { default: 10m, max: 1h, renewals: 2, renewWindow: 2m }"),
    "solo-web": _web("solo-web", "ttl: { default: 10m, max: 30m, renewals: 1 }", scope="user"),
    "tcp-echo": "\n".join([
        "id: tcp-echo", "name: tcp-echo", "image: busybox:1.35",
        'command: [sh, -c, "exec nc -ll -p 9000 -e /bin/cat"]',
        "expose: [{ name: pwn, port: 9000, protocol: tcp }]",
        "resources: { cpu: 0.25, memory: 32m, pids: 32 }",
        "healthcheck: { type: tcp, port: pwn }", "",
    ]),
    # Invalid on purpose: the admin page lists the files Poseidon could not load.
    "broken": "id: broken\nname: broken\nimage: busybox:1.35\nexpose: [{ name: web, port: 70000, protocol: http }]\n",
}


def write_challenges(target):
    shutil.copytree(os.path.join(REPO, "challenges"), target)
    for cid, text in TEST_CHALLENGES.items():
        os.makedirs(os.path.join(target, cid))
        with open(os.path.join(target, cid, "challenge.yaml"), "w") as f:
            f.write(text)


# -- Poseidon -----------------------------------------------------------------------------------

def docker_cleanup(manager):
    """Removes every container, then every network, labelled ``poseidon.managed-by=manager``."""
    label = "label=poseidon.managed-by=%s" % manager
    for kind, ls, rm in (("container", ["docker", "ps", "-aq"], ["docker", "rm", "-f"]),
                         ("network", ["docker", "network", "ls", "-q"], ["docker", "network", "rm"])):
        for _ in range(3):
            ids = subprocess.run(ls + ["--filter", label], capture_output=True, text=True, timeout=60).stdout.split()
            if not ids:
                break
            subprocess.run(rm + ids, capture_output=True, timeout=120)


class Poseidon:
    def __init__(self, work, env_extra=None):
        self.manager = "poseidon-test-ctfd-%s" % secrets.token_hex(4)
        self.key = "ctfd-test-" + secrets.token_hex(16)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.work = work
        challenges = os.path.join(work, "challenges")
        if not os.path.isdir(challenges):
            write_challenges(challenges)
        self.log_path = os.path.join(work, "poseidon-%d.log" % self.port)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "POSEIDON_HOST": "127.0.0.1", "POSEIDON_PORT": str(self.port), "POSEIDON_API_KEY": self.key,
            "POSEIDON_MANAGER_ID": self.manager, "POSEIDON_CHALLENGES_DIR": challenges,
            "POSEIDON_DATA_DIR": os.path.join(work, "data-%d" % self.port),
            "POSEIDON_TRAEFIK_DIR": os.path.join(work, "traefik-%d" % self.port),
            "POSEIDON_FLAG_SECRET": "flag-" + secrets.token_hex(16), "POSEIDON_ACCESS_SECRET": "access-" + secrets.token_hex(16),
            "POSEIDON_URL": "http://127.0.0.1:%d" % self.port,
            "POSEIDON_BASE_DOMAIN": BASE_DOMAIN, "POSEIDON_RESYNC_SECONDS": "2", "POSEIDON_LOG_LEVEL": "info",
        }
        env.update(env_extra or {})
        self.env = env
        self.proc = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, "wb")
        node = shutil.which("node") or "node"
        self.proc = subprocess.Popen([node, "--import", "tsx", "src/cli.ts", "serve", "--dev"], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

        def healthy():
            if self.proc.poll() is not None:
                raise Fatal("poseidon exited (%s):\n%s" % (self.proc.returncode, self.logs()[-3000:]))
            return requests.get(self.url + "/healthz", timeout=2).ok
        wait_until("poseidon /healthz", healthy, timeout=90)
        return self

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()
        docker_cleanup(self.manager)

    def api(self, method, path, body=None):
        r = requests.request(method, self.url + path, headers={"x-api-key": self.key}, json=body, timeout=30)
        return r.status_code, (r.json() if r.content else None)

    def wait_ready(self, challenge, timeout=300):
        """Until the catalog says ``challenge`` is ready (its image built or present)."""
        def ready():
            _, body = self.api("GET", "/v1/challenges")
            for c in body.get("challenges", []):
                if c["id"] == challenge:
                    if c["state"] == "image-missing":
                        raise AssertionError("image of %s failed: %s" % (challenge, c.get("error")))
                    return c["state"] == "ready"
            return False
        wait_until("%s ready" % challenge, ready, timeout=timeout, every=0.5)


# -- the CTFd stand-in --------------------------------------------------------------------------

class StandIn:
    """The stand-in app with the plugin folder copied into ``<root>/plugins/poseidon``."""

    def __init__(self, work, user_mode="teams"):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args, **kwargs):
                pass

        import CTFd

        self.root = os.path.join(work, "ctfd-%s" % secrets.token_hex(3))
        os.makedirs(os.path.join(self.root, "plugins"))
        shutil.copytree(PLUGIN_SRC, os.path.join(self.root, "plugins", "poseidon"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.app = CTFd.create_app(self.root, "sqlite:///" + os.path.join(self.root, "ctfd.db"), user_mode=user_mode)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True, request_handler=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="standin", daemon=True)
        self.thread.start()
        self.users = {}
        self.teams = {}

    def seed(self, teams, admins=("admin",), users_mode=False):
        import CTFd

        users, team_ids = CTFd.seed(self.app, teams, admins, users_mode)
        self.users.update(users)
        self.teams.update(team_ids)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def login(self, name):
        """A requests.Session signed in as ``name``, with CTFd's nonce as a browser would read it."""
        s = requests.Session()
        s.trust_env = False
        r = s.get(self.url + "/test/login/%d" % self.users[name], timeout=30)
        r.raise_for_status()
        m = re.search(r'csrfNonce: "([0-9a-f]+)"', r.text)
        assert m, "no csrfNonce on the challenges page"
        s.headers["CSRF-Token"] = m.group(1)
        s.nonce = m.group(1)
        return s

    def configure(self, poseidon, **extra):
        admin = self.login("admin")
        body = {"url": poseidon.url, "apiKey": poseidon.key}
        body.update(extra)
        r = admin.post(self.url + "/plugins/poseidon/api/v1/admin/settings", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return admin

    def add_challenge(self, name, poseidon_id, state="visible", **extra):
        admin = self.login("admin")
        body = {"name": name, "category": "web", "description": "Instance challenge %s" % name, "value": 100,
                "state": state, "type": "poseidon", "poseidon_id": poseidon_id}
        body.update(extra)
        r = admin.post(self.url + "/api/v1/challenges", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["success"], r.text
        return r.json()["data"]["id"]


class Player:
    """A signed-in player's view of one challenge, through the plugin's routes only."""

    def __init__(self, standin, name, challenge_id):
        self.standin = standin
        self.session = standin.login(name)
        self.cid = challenge_id

    def _url(self, suffix=""):
        return "%s/plugins/poseidon/api/v1/challenges/%d/instance%s" % (self.standin.url, self.cid, suffix)

    def state(self, wait=0, known=""):
        r = self.session.get(self._url(), params={"wait": wait, "known": known}, timeout=wait + 30)
        return r.status_code, r.json()

    def launch(self):
        r = self.session.post(self._url(), json={}, timeout=60)
        return r.status_code, r.json()

    def act(self, action, body=None):
        r = self.session.post(self._url("/" + action), json=body or {}, timeout=60)
        return r.status_code, r.json()

    def wait_status(self, status, timeout=180):
        def reached():
            code, body = self.state()
            inst = body.get("instance")
            if inst and inst["status"] == status:
                return body
            if status == "none" and code == 200 and inst is None:
                return body
            return None
        return wait_until("instance %s" % status, reached, timeout=timeout, every=0.5)

    def submit(self, flag):
        r = self.session.post(self.standin.url + "/api/v1/challenges/attempt", json={"challenge_id": self.cid, "submission": flag}, timeout=60)
        return r.status_code, r.json()


# -- the shared rig ------------------------------------------------------------------------------

_shared = {}
_lock = threading.Lock()
_cleanups = []


def _cleanup():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - keep cleaning
            sys.stderr.write("cleanup failed: %r\n" % err)


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    _cleanup()
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT):
    try:
        signal.signal(_sig, _on_signal)
    except ValueError:
        pass


def register_cleanup(fn):
    _cleanups.append(fn)


def new_workdir():
    work = tempfile.mkdtemp(prefix="poseidon-ctfd-")
    register_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
    return work


def start_poseidon(env_extra=None, work=None):
    p = Poseidon(work or new_workdir(), env_extra)
    register_cleanup(p.stop)
    return p.start()


def shared(extra_env=None):
    """The run's stand-in (teams red, blue, green, amber; admin) and Poseidon (delegate mode
    towards it); ``extra_env`` adds to Poseidon's environment on first call."""
    with _lock:
        if _shared:
            return _shared["standin"], _shared["poseidon"]
        work = new_workdir()
        standin = StandIn(work)
        register_cleanup(standin.stop)
        standin.seed({"red": ["alice", "bob"], "blue": ["carol"], "green": ["dave"], "amber": ["erin"]})
        poseidon = start_poseidon({
            "POSEIDON_AUTH_MODE": "delegate",
            "POSEIDON_AUTH_DELEGATE_URL": standin.url + "/plugins/poseidon/auth",
            "POSEIDON_AUTH_DELEGATE_CACHE_SECONDS": "1",
            "POSEIDON_TEAM_LIMIT": "2",
            "POSEIDON_RATE_LIMITS": "launch=60/60,stop=60/60,restart=3/60,renew=60/60",
            **(extra_env or {}),
        }, work)
        standin.configure(poseidon)
        _shared.update(standin=standin, poseidon=poseidon)
        return standin, poseidon


def secrets_of(poseidon):
    """Strings that must never reach a browser or a log the plugin writes."""
    return [poseidon.key, poseidon.env["POSEIDON_FLAG_SECRET"], poseidon.env["POSEIDON_ACCESS_SECRET"]]


def dump(obj):
    return json.dumps(obj, sort_keys=True)
