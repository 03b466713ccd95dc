"""What the player panel and the flag check do, independent of Flask and CTFd's objects.

Everything here takes an ``Owner`` that the caller derived from the CTFd session on the server;
nothing the browser sends is trusted to say whose instance it is. Instances are found by asking
Poseidon for the owner's live instance of the bound challenge, never by an id from the browser.
What goes back to the browser is ``present()``-ed: no instance id, no flag, no token other than
the access link the player asked for, no published host port, no internal reason text.
"""
import hashlib
import json
import re
import threading
import time
from datetime import datetime, timezone

from .client import PoseidonProblem, PoseidonUnavailable, reset_breaker

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
PREFIX = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.@-]{0,31})?$")
MAX_FLAG = 512
CATALOG_TTL = 30.0
LIVE_FILTER_RECHECK = 300.0

UNREACHABLE = "The instance service is unreachable right now. CTFd keeps working; try again in a minute."
NOT_CONFIGURED = "Instances are not set up yet. Tell the organisers."


class Refusal(Exception):
    """A plain message for the player, with the HTTP status the plugin answers."""

    def __init__(self, message, status=409, retry_after=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class Owner:
    """Who acts, as Poseidon principals: ``team`` (a CTFd team, or the user in user mode) and ``user``."""

    __slots__ = ("team", "user")

    def __init__(self, team, user):
        self.team = team
        self.user = user

    def __repr__(self):
        return "Owner(%s, %s)" % (self.team, self.user)


def owner_for(user_id, team_id, teams_mode, prefix=""):
    """The Poseidon owner of a CTFd account: team ``<prefix>t<id>`` in team mode, else the user's
    ``<prefix>u<id>``; the user is always ``<prefix>u<id>``. None when a team is needed and missing."""
    if user_id is None:
        return None
    user = "%su%d" % (prefix, int(user_id))
    if teams_mode:
        if team_id is None:
            return None
        return Owner("%st%d" % (prefix, int(team_id)), user)
    return Owner(user, user)


def parse_time(value):
    """Seconds since the epoch of an ISO 8601 UTC string from Poseidon (or None)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def is_live(inst, now):
    """Poseidon's own rule: asked to run, not failed, and queued or not yet expired."""
    if inst.get("desired") != "running" or inst.get("status") in ("failed", "stopped"):
        return False
    if inst.get("status") == "queued":
        return True
    expires = parse_time(inst.get("expiresAt"))
    return expires is not None and now < expires


# -- catalog and instance lookup ----------------------------------------------------------

class _Caches:
    def __init__(self):
        self.lock = threading.Lock()
        self.catalog = {}  # base_url -> (until, {id: entry})
        self.live_filter = {}  # base_url -> (checked_at, supported)


_caches = _Caches()


def reset_caches():
    with _caches.lock:
        _caches.catalog.clear()
        _caches.live_filter.clear()
    reset_breaker()


def catalog_entries(client, fresh=False):
    """Poseidon's launchable challenges by id (cached for 30 s per server)."""
    with _caches.lock:
        hit = _caches.catalog.get(client.base_url)
    if hit and hit[0] > time.monotonic() and not fresh:
        return hit[1]
    return remember_catalog(client, client.challenges() or {})


def remember_catalog(client, data):
    """Caches a ``GET /v1/challenges`` answer; returns its launchable challenges by id."""
    entries = {c.get("id"): c for c in data.get("challenges", []) if isinstance(c, dict)}
    with _caches.lock:
        _caches.catalog[client.base_url] = (time.monotonic() + CATALOG_TTL, entries)
    return entries


def challenge_entry(client, pid):
    try:
        return catalog_entries(client).get(pid)
    except PoseidonProblem:
        return None


def find_instance(client, owner, pid, scope="team", now=None):
    """The owner's live instance of ``pid`` (newest first when several), or None.

    Uses ``GET /v1/instances?team=&challenge=&live=true`` (and ``&user=`` for user-scoped
    challenges) when the server knows ``live``, else lists the team's instances of the challenge
    and keeps the live ones; whether ``live`` is known is checked again every five minutes.
    """
    now = time.time() if now is None else now
    user = owner.user if scope == "user" else None
    base = client.base_url
    with _caches.lock:
        known = _caches.live_filter.get(base)
    supported = known[1] if known and time.monotonic() - known[0] < LIVE_FILTER_RECHECK else None
    instances = None
    if supported is not False:
        try:
            instances = client.instances(team=owner.team, challenge=pid, user=user, live=True)
            supported = True
        except PoseidonProblem as err:
            if err.code != "E_BAD_REQUEST":
                raise
            supported = False
        with _caches.lock:
            _caches.live_filter[base] = (time.monotonic(), supported)
    if instances is None:
        instances = client.instances(team=owner.team, challenge=pid)
    mine = [i for i in instances if i.get("team") == owner.team and i.get("challenge") == pid and is_live(i, now)]
    if user is not None:
        mine = [i for i in mine if i.get("user") == user]
    mine.sort(key=lambda i: i.get("createdAt") or "", reverse=True)
    return mine[0] if mine else None


# -- presenting an instance to its owner ------------------------------------------------------

STATUS_TEXT = {
    "queued": "Waiting for a free slot",
    "pending": "Starting",
    "starting": "Starting",
    "running": "Running",
    "stopping": "Stopping",
    "stopped": "Stopped",
    "failed": "Could not start",
}


def _tcp_connection(url):
    m = re.match(r"^(tls|tcp)://([A-Za-z0-9.-]+):(\d+)/?$", url or "")
    if not m:
        return None
    scheme, host, port = m.groups()
    if scheme == "tls":
        return {"command": "ncat --ssl %s %s" % (host, port),
                "alternative": "openssl s_client -quiet -connect %s:%s -servername %s" % (host, port, host)}
    return {"command": "nc %s %s" % (host, port)}


def _endpoints(inst):
    out = []
    for e in inst.get("endpoints") or []:
        name = e.get("name")
        if not isinstance(name, str):
            continue
        if e.get("protocol") == "http":
            out.append({"name": name, "protocol": "http"})
        elif e.get("protocol") == "tcp":
            conn = _tcp_connection(e.get("url"))
            if conn:
                out.append(dict({"name": name, "protocol": "tcp", "url": e.get("url")}, **conn))
    return out


def _renew_state(inst, entry, now):
    """Whether renew can work now, and why not (so the button can say so)."""
    ttl = (entry or {}).get("ttl") or {}
    status = inst.get("status")
    if status not in ("pending", "starting", "running"):
        return {"allowed": False, "reason": "Renewal is possible once the instance has started."}
    allowed_count = ttl.get("renewals")
    renewals = inst.get("renewals") or 0
    if isinstance(allowed_count, int) and renewals >= allowed_count:
        return {"allowed": False, "reason": "No renewals left (%d used)." % renewals}
    expires = parse_time(inst.get("expiresAt"))
    max_expires = parse_time(inst.get("maxExpiresAt"))
    if expires is not None and max_expires is not None and expires >= max_expires - 1:
        return {"allowed": False, "reason": "The instance has reached its maximum lifetime."}
    window = ttl.get("renewWindowSeconds")
    if isinstance(window, int) and expires is not None and expires - now > window:
        return {"allowed": False, "opensAt": iso(expires - window),
                "reason": "Renewal opens %s before expiry." % _duration(window)}
    return {"allowed": True}


def _duration(seconds):
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return "%d h" % (seconds // 3600)
    if seconds % 60 == 0 and seconds >= 60:
        return "%d min" % (seconds // 60)
    return "%d s" % seconds


def present(inst, entry, now):
    """The instance as its owner's browser sees it."""
    if inst is None:
        return None
    status = inst.get("status")
    ttl = (entry or {}).get("ttl") or {}
    out = {
        "status": status,
        "statusText": STATUS_TEXT.get(status, status),
        "createdAt": inst.get("createdAt"),
        "expiresAt": inst.get("expiresAt"),
        "maxExpiresAt": inst.get("maxExpiresAt"),
        "generation": inst.get("generation"),
        "renewals": inst.get("renewals") or 0,
        "endpoints": _endpoints(inst) if status == "running" else [],
        "renew": _renew_state(inst, entry, now),
        "canRestart": status in ("pending", "starting", "running"),
        "canStop": status in ("queued", "pending", "starting", "running"),
    }
    if isinstance(ttl.get("renewals"), int):
        out["renewalsLeft"] = max(0, ttl["renewals"] - out["renewals"])
    queue = inst.get("queue")
    if status == "queued" and isinstance(queue, dict):
        out["queue"] = {"position": queue.get("position")}
        if queue.get("estimatedStartAt"):
            out["queue"]["estimatedStartAt"] = queue["estimatedStartAt"]
    return out


def _etag(presented):
    if presented is None:
        return "none"
    stable = dict(presented)
    stable.pop("renew", None)  # time-dependent; the browser recomputes the window itself
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def state(client, owner, pid, now=None):
    """``{instance, etag, serverTime}`` for the owner's instance of ``pid`` (None when there is none)."""
    now = time.time() if now is None else now
    entry = challenge_entry(client, pid)
    scope = (entry or {}).get("scope", "team")
    raw = find_instance(client, owner, pid, scope, now)
    if raw is not None and raw.get("status") == "queued" and "queue" not in raw:
        # Lists carry no queue place; the instance itself does.
        raw = client.instance(raw["id"])
    shown = present(raw, entry, now)
    out = {"instance": shown, "etag": _etag(shown), "serverTime": iso(now), "_raw": raw}
    if raw is None:
        last = _last_failure(client, owner, pid, scope)
        if last:
            out["lastFailure"] = last
            out["etag"] = _etag({"lastFailure": last})
    return out


def _last_failure(client, owner, pid, scope):
    """When the owner's newest instance of ``pid`` failed (it never started, or crashed until
    Poseidon gave up), when that was; the reason itself stays with the admins."""
    try:
        every = client.instances(team=owner.team, challenge=pid)
    except (PoseidonProblem, PoseidonUnavailable):
        return None
    mine = [i for i in every if i.get("team") == owner.team and i.get("challenge") == pid]
    if scope == "user":
        mine = [i for i in mine if i.get("user") == owner.user]
    if not mine:
        return None
    newest = max(mine, key=lambda i: i.get("createdAt") or "")
    if newest.get("status") != "failed":
        return None
    return {"createdAt": newest.get("createdAt")}


def public(st, message=None):
    """What the browser gets from a state (the raw instance stays on the server)."""
    out = {k: v for k, v in st.items() if not k.startswith("_")}
    if message:
        out["message"] = message
    return out


# -- actions ----------------------------------------------------------------------------------

def explain(err, names=None, action=None):
    """A Refusal with a plain message for any Poseidon failure (never its raw detail)."""
    if isinstance(err, PoseidonUnavailable):
        return Refusal(UNREACHABLE, 503)
    if not isinstance(err, PoseidonProblem):
        return Refusal(UNREACHABLE, 503)
    code = err.code
    if code == "E_TEAM_LIMIT":
        held = [names(i.get("challenge")) if names else i.get("challenge") for i in err.body.get("instances") or []]
        held = [h for h in held if h]
        which = (": " + ", ".join(held)) if held else ""
        return Refusal("Your team already runs %d instances, the most it may%s. Stop one of them to launch this one."
                       % (len(err.body.get("instances") or []), which), 409)
    if code == "E_RATE_LIMITED":
        wait = err.retry_after or 60
        return Refusal("Too many %s requests from your team. Try again in %d s." % (action or "such", wait), 429, wait)
    if code == "E_UNDER_LOAD":
        return Refusal("Renewals are paused while the platform is busy. Try again later.", 409)
    if code == "E_RENEW_WINDOW":
        return Refusal("Renewal is not open yet: it opens shortly before the instance expires.", 409)
    if code == "E_RENEW_LIMIT":
        return Refusal("This instance cannot be renewed any more (no renewals left, or its maximum lifetime is reached).", 409)
    if code == "E_NOT_RUNNING":
        return Refusal("The instance is not running (any more). Launch a new one.", 409)
    if code == "E_CONFLICT":
        return Refusal("The instance changed meanwhile. Try again.", 409)
    if code == "E_IMAGE_NOT_READY":
        return Refusal("This challenge cannot start right now (its image is not ready). Tell the organisers.", 409)
    if code in ("E_CHALLENGE_NOT_FOUND",):
        return Refusal("This challenge is not available on the instance service. Tell the organisers.", 409)
    if code in ("E_UNAUTHORIZED", "E_FORBIDDEN"):
        return Refusal("The instance service refused the platform's key. Tell the organisers.", 502)
    if code == "E_STORE" or err.status >= 500:
        return Refusal(UNREACHABLE, 503)
    return Refusal("The instance service refused the request. Tell the organisers if it keeps happening.", 502)


def launch(client, owner, pid, names=None, now=None):
    """Launches the owner's instance (or finds the one already live) and returns the state."""
    try:
        try:
            client.launch(pid, owner.team, owner.user)
        except PoseidonProblem as err:
            if err.code != "E_OWNER_LIMIT":  # already live: show it
                raise
        return state(client, owner, pid, now)
    except (PoseidonProblem, PoseidonUnavailable) as err:
        raise explain(err, names, "launch") from None


def act(client, owner, pid, action, now=None):
    """``renew``, ``restart`` or ``stop`` on the owner's live instance; returns the new state."""
    try:
        st = state(client, owner, pid, now)
        raw = st["_raw"]
        if raw is None:
            raise Refusal("There is no running instance to %s. Launch one first." % action, 409)
        for attempt in (1, 2):
            try:
                if action == "renew":
                    client.renew(raw["id"])
                elif action == "restart":
                    client.restart(raw["id"])
                elif action == "stop":
                    client.stop(raw["id"])
                else:
                    raise Refusal("Unknown action.", 400)
                break
            except PoseidonProblem as err:
                if err.code != "E_CONFLICT" or attempt == 2:
                    raise
        return state(client, owner, pid, now)
    except (PoseidonProblem, PoseidonUnavailable) as err:
        raise explain(err, None, action) from None


def access_url(client, owner, pid, endpoint=None, now=None):
    """A fresh access link for one HTTP endpoint of the owner's running instance."""
    if endpoint is not None and not DNS_LABEL.match(endpoint):
        raise Refusal("Unknown endpoint.", 400)
    try:
        st = state(client, owner, pid, now)
        raw = st["_raw"]
        if raw is None or raw.get("status") not in ("pending", "starting", "running"):
            raise Refusal("There is no running instance to open. Launch one first.", 409)
        names = [e["name"] for e in (st["instance"] or {}).get("endpoints", []) if e["protocol"] == "http"]
        if endpoint is not None and names and endpoint not in names:
            raise Refusal("Unknown endpoint.", 400)
        answer = client.access(raw["id"], endpoint)
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            raise Refusal("The instance service gave no link. Try again.", 502)
        return {"url": url, "expiresAt": answer.get("expiresAt"), "endpoint": answer.get("endpoint")}
    except (PoseidonProblem, PoseidonUnavailable) as err:
        if isinstance(err, PoseidonProblem) and err.code == "E_BAD_REQUEST":
            raise Refusal("This endpoint cannot be opened in a browser.", 400) from None
        raise explain(err, None, "access") from None


def _signature(raw):
    if raw is None:
        return None
    queue = raw.get("queue") or {}
    return (raw.get("id"), raw.get("status"), raw.get("expiresAt"), raw.get("generation"), queue.get("position"))


def wait_for_change(client, owner, pid, known, seconds, now_fn=time.time, poll_every=2.0):
    """The state as soon as it differs from the ``known`` etag, or after ``seconds``.

    Waits on Poseidon's team event stream (an event about this challenge prompts a fresh read);
    if the stream cannot be opened it reads every ``poll_every`` seconds until the deadline.
    """
    st = state(client, owner, pid, now_fn())
    if seconds <= 0 or st["etag"] != known:
        return st
    deadline = time.monotonic() + seconds
    seen = _signature(st["_raw"])
    try:
        for ev in client.events(owner.team, deadline):
            inst = ev.get("instance") if isinstance(ev, dict) else None
            if not isinstance(inst, dict) or inst.get("challenge") != pid:
                continue
            sig = (inst.get("id"), inst.get("status"), inst.get("expiresAt"), None, (inst.get("queue") or {}).get("position"))
            if seen is not None and sig[0] == seen[0] and sig[1] == seen[1] and sig[2] == seen[2] and sig[4] == seen[4]:
                continue  # the snapshot (or a repeat) of what is already shown
            if seen is None and inst.get("status") in ("stopped", "failed"):
                continue
            st = state(client, owner, pid, now_fn())
            if st["etag"] != known:
                return st
            seen = _signature(st["_raw"])
        return state(client, owner, pid, now_fn())
    except PoseidonUnavailable:
        pass
    while time.monotonic() + poll_every < deadline:
        time.sleep(poll_every)
        st = state(client, owner, pid, now_fn())
        if st["etag"] != known:
            return st
    return st


# -- flags ------------------------------------------------------------------------------------

class Verdict:
    __slots__ = ("correct", "checked", "owner", "message")

    def __init__(self, correct, checked, owner=None, message=""):
        self.correct = correct
        self.checked = checked
        self.owner = owner
        self.message = message


def verify_flag(client, owner, pid, submission):
    """Asks Poseidon whether ``submission`` is the owner's flag for ``pid``.

    ``checked`` is False when Poseidon could not answer (the attempt must not count); ``owner``
    is set (a dict with ``team`` and ``instance``) when the flag is another team's.
    """
    flag = (submission or "").strip()
    if not flag or len(flag) > MAX_FLAG:
        return Verdict(False, True, message="Incorrect")
    try:
        answer = client.verify_flag(pid, owner.team, flag)
    except PoseidonUnavailable:
        return Verdict(False, False, message="Flags cannot be checked right now (the instance service is unreachable). "
                                             "This attempt was not counted; try again in a minute.")
    except PoseidonProblem as err:
        if err.status >= 500 or err.code in ("E_UNAUTHORIZED", "E_FORBIDDEN", "E_STORE"):
            return Verdict(False, False, message="Flags cannot be checked right now. This attempt was not counted; "
                                                 "tell the organisers if it keeps happening.")
        return Verdict(False, True, message="Incorrect")
    if not isinstance(answer, dict):
        return Verdict(False, False, message="Flags cannot be checked right now. This attempt was not counted.")
    if answer.get("correct") is True:
        return Verdict(True, True, message="Correct")
    shared = answer.get("owner") if isinstance(answer.get("owner"), dict) else None
    return Verdict(False, True, owner=shared, message="Incorrect")
