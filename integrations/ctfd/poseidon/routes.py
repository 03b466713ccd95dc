"""HTTP routes: the player API behind the panel, the delegate-mode answer for Poseidon's
forward-auth, and the admin page with its API.

Player routes act only for the signed-in account's own owner (team, or user in user mode), which
is derived here from CTFd's session; the challenge id in the URL only selects which CTFd
challenge (and so which Poseidon challenge) is meant. State-changing routes need CTFd's CSRF
nonce (the ``CSRF-Token`` header, as CTFd's own API does).
"""
import hmac
import logging
import re
import time

from flask import Blueprint, jsonify, render_template, request, session

from CTFd.models import Solves, Teams, Users, db
from CTFd.utils.config import is_teams_mode
from CTFd.utils.decorators import admins_only
from CTFd.utils.dates import ctf_ended, ctf_paused, ctftime, view_after_ctf
from CTFd.utils.user import authed, get_current_team, get_current_user, is_admin

from . import service, settings
from .client import NotConfigured, PoseidonError, PoseidonProblem, PoseidonUnavailable
from .models import PoseidonChallenge, PoseidonIncident

log = logging.getLogger("poseidon.ctfd")

bp = Blueprint("poseidon", __name__, template_folder="templates")

API = "/plugins/poseidon/api/v1"
ACTIONS = ("renew", "restart", "stop")
URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


# -- helpers ----------------------------------------------------------------------------------

def _answer(body, status=200, retry_after=None):
    body = dict(body)
    body.setdefault("success", status < 400)
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    if retry_after:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def _refused(refusal):
    return _answer({"message": refusal.message}, refusal.status, refusal.retry_after)


def _csrf_ok():
    """CTFd's rule: a non-GET request carries the session nonce in ``CSRF-Token`` (requests that
    authenticate with an API token in ``Authorization`` carry none, as in CTFd itself)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    if request.headers.get("Authorization"):
        return True
    nonce = session.get("nonce")
    sent = request.headers.get("CSRF-Token", "")
    return bool(nonce) and hmac.compare_digest(str(nonce).encode(), sent.encode())


def _ctf_open():
    if is_admin():
        return True
    if ctf_paused():
        return False
    return bool(ctftime() or (ctf_ended() and view_after_ctf()))


def _prerequisites_met(challenge, user):
    reqs = (challenge.requirements or {}).get("prerequisites", []) if isinstance(challenge.requirements, dict) else []
    if not reqs:
        return True
    if is_teams_mode():
        solved = Solves.query.with_entities(Solves.challenge_id).filter_by(team_id=user.team_id).all()
    else:
        solved = Solves.query.with_entities(Solves.challenge_id).filter_by(user_id=user.id).all()
    return set(reqs) <= {cid for (cid,) in solved}


class _Player:
    __slots__ = ("client", "owner", "pid", "challenge_id")


def _player(challenge_id, mutating=False):
    """Who is asking, about which bound challenge; a Refusal otherwise. Releases the database
    session before returning, since the caller may then wait on Poseidon."""
    try:
        if not authed():
            raise service.Refusal("Sign in to use instances.", 403)
        user = get_current_user()
        teams = is_teams_mode()
        team = get_current_team() if teams else None
        owner = service.owner_for(user.id, team.id if team else None, teams, settings.prefix())
        if owner is None:
            raise service.Refusal("Join a team to use instances.", 403)
        challenge = PoseidonChallenge.query.filter_by(id=challenge_id).first()
        if challenge is None:
            raise service.Refusal("No such challenge.", 404)
        if not is_admin():
            if challenge.state != "visible":
                raise service.Refusal("No such challenge.", 404)
            if not _prerequisites_met(challenge, user):
                raise service.Refusal("Solve the required challenges first.", 403)
        if mutating and not _ctf_open():
            raise service.Refusal("The CTF is not running: instances cannot be launched or changed now.", 403)
        if not challenge.poseidon_id:
            raise service.Refusal("This challenge has no instance configured yet. Tell the organisers.", 409)
        p = _Player()
        p.owner, p.pid, p.challenge_id = owner, challenge.poseidon_id, challenge.id
        try:
            p.client = settings.client()
        except NotConfigured:
            raise service.Refusal(service.NOT_CONFIGURED, 503) from None
        return p
    finally:
        db.session.close()


def _names():
    """Poseidon challenge id -> CTFd challenge name, for messages naming a team's instances."""
    bound = {}
    # A player is told the names of the challenges they can see (all of them, when several
    # CTFd challenges use the same Poseidon challenge).
    for c in PoseidonChallenge.query.order_by(PoseidonChallenge.id).all():
        if c.poseidon_id and c.state == "visible":
            bound.setdefault(c.poseidon_id, []).append(c.name)
    return lambda pid: " / ".join(bound.get(pid, [])) or "another challenge"


# -- player API -------------------------------------------------------------------------------

@bp.route(API + "/challenges/<int:challenge_id>/instance", methods=["GET"])
def instance_state(challenge_id):
    try:
        p = _player(challenge_id)
        limit = settings.wait_seconds()
        try:
            wait = max(0, min(int(request.args.get("wait", "0")), limit))
        except ValueError:
            wait = 0
        known = request.args.get("known", "")[:32]
        try:
            st = service.wait_for_change(p.client, p.owner, p.pid, known, wait) if wait else service.state(p.client, p.owner, p.pid)
        except (PoseidonProblem, PoseidonUnavailable) as err:
            raise service.explain(err) from None
        body = service.public(st)
        body["waitSeconds"] = limit
        return _answer(body)
    except service.Refusal as r:
        return _refused(r)


@bp.route(API + "/challenges/<int:challenge_id>/instance", methods=["POST"])
def instance_launch(challenge_id):
    if not _csrf_ok():
        return _answer({"message": "Your session expired: reload the page."}, 403)
    try:
        p = _player(challenge_id, mutating=True)
        names = None
        try:
            names = _names()
        finally:
            db.session.close()
        st = service.launch(p.client, p.owner, p.pid, names)
        log.info("instance launch for %s on challenge %s", p.owner.team, p.challenge_id)
        return _answer(service.public(st), 202)
    except service.Refusal as r:
        return _refused(r)


@bp.route(API + "/challenges/<int:challenge_id>/instance/<action>", methods=["POST"])
def instance_action(challenge_id, action):
    if not _csrf_ok():
        return _answer({"message": "Your session expired: reload the page."}, 403)
    if action not in ACTIONS and action != "access":
        return _answer({"message": "Unknown action."}, 404)
    try:
        p = _player(challenge_id, mutating=action in ("renew", "restart"))
        if action == "access":
            body = request.get_json(silent=True) or {}
            endpoint = body.get("endpoint") if isinstance(body, dict) else None
            if endpoint is not None and not isinstance(endpoint, str):
                raise service.Refusal("Unknown endpoint.", 400)
            link = service.access_url(p.client, p.owner, p.pid, endpoint)
            return _answer(link)
        st = service.act(p.client, p.owner, p.pid, action)
        log.info("instance %s for %s on challenge %s", action, p.owner.team, p.challenge_id)
        done = {"renew": "Renewed.", "restart": "Restarting with a fresh container.", "stop": "Stopped."}[action]
        return _answer(service.public(st, done))
    except service.Refusal as r:
        return _refused(r)


# -- delegate mode ----------------------------------------------------------------------------

@bp.route("/plugins/poseidon/auth", methods=["GET"])
def delegate_answer():
    """``POSEIDON_AUTH_DELEGATE_URL``: Poseidon asks, with the player's cookies, whose session
    this is. 200 ``{team, user}`` for a signed-in player, 401 otherwise (403 for admins when
    configured so). Nothing from the request but the session is used."""
    try:
        if not authed():
            return _answer({"team": None}, 401)
        user = get_current_user()
        if user is None:
            return _answer({"team": None}, 401)
        if is_admin() and settings.delegate_admins() == "deny":
            return _answer({"team": None}, 403)
        if getattr(user, "banned", False):
            return _answer({"team": None}, 403)
        teams = is_teams_mode()
        team = get_current_team() if teams else None
        if team is not None and getattr(team, "banned", False):
            return _answer({"team": None}, 403)
        owner = service.owner_for(user.id, team.id if team else None, teams, settings.prefix())
        if owner is None:
            return _answer({"team": None}, 401)
        return _answer({"team": owner.team, "user": owner.user, "success": True})
    finally:
        db.session.close()


# -- admin ------------------------------------------------------------------------------------

def _admin_guard():
    if not is_admin():
        return _answer({"message": "Admins only."}, 403)
    if not _csrf_ok():
        return _answer({"message": "Your session expired: reload the page."}, 403)
    return None


def _principal_names():
    pre = re.escape(settings.prefix())
    team_re = re.compile(r"^%st(\d+)$" % pre)
    user_re = re.compile(r"^%su(\d+)$" % pre)

    def name(principal):
        if not principal:
            return None
        m = team_re.match(principal)
        if m:
            t = Teams.query.filter_by(id=int(m.group(1))).first()
            return t.name if t else None
        m = user_re.match(principal)
        if m:
            u = Users.query.filter_by(id=int(m.group(1))).first()
            return u.name if u else None
        return None
    return name


@bp.route("/admin/poseidon", methods=["GET"])
@admins_only
def admin_page():
    return render_template("poseidon/admin.html", plugin_assets="/plugins/%s/assets/" % _plugin_dir())


def _plugin_dir():
    from .challenge_type import PLUGIN_DIR
    return PLUGIN_DIR


@bp.route(API + "/admin/overview", methods=["GET"])
def admin_overview():
    denied = _admin_guard()
    if denied:
        return denied
    try:
        name = _principal_names()
        bindings = [{"id": c.id, "name": c.name, "category": c.category, "state": c.state, "poseidonId": c.poseidon_id}
                    for c in PoseidonChallenge.query.order_by(PoseidonChallenge.id).all()]
        titles = {b["id"]: b["name"] for b in bindings}
        incidents = []
        for i in PoseidonIncident.query.order_by(PoseidonIncident.id.desc()).limit(200).all():
            incidents.append({
                "date": i.date.isoformat() + "Z" if i.date else None,
                "challengeId": i.challenge_id, "challenge": titles.get(i.challenge_id),
                "submittedBy": i.submitted_by, "submittedByName": name(i.submitted_by),
                "userId": i.user_id, "owner": i.owner, "ownerName": name(i.owner), "instance": i.instance,
            })
        return _answer({"settings": settings.describe(), "bindings": bindings, "incidents": incidents})
    finally:
        db.session.close()


@bp.route(API + "/admin/settings", methods=["POST"])
def admin_settings():
    denied = _admin_guard()
    if denied:
        return denied
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _answer({"message": "Send the settings as JSON."}, 400)
    values = {}
    errors = []
    if "url" in body:
        url = str(body.get("url") or "").strip().rstrip("/")
        if url and not URL_RE.match(url):
            errors.append("Poseidon URL: http(s)://host[:port][/path]")
        values["url"] = url
    if body.get("apiKey"):
        key = str(body["apiKey"]).strip()
        if len(key) < 16 or any(c.isspace() for c in key):
            errors.append("API key: at least 16 characters, no spaces")
        values["apiKey"] = key
    if body.get("clearApiKey"):
        values["clearApiKey"] = True
    if "prefix" in body:
        prefix = str(body.get("prefix") or "").strip()
        if not service.PREFIX.match(prefix):
            errors.append("Team prefix: letters, digits, '_', '.', '@', '-' (at most 32)")
        values["prefix"] = prefix
    if "waitSeconds" in body:
        try:
            wait = int(body["waitSeconds"])
            if not 0 <= wait <= settings.MAX_WAIT:
                raise ValueError
            values["waitSeconds"] = wait
        except (TypeError, ValueError):
            errors.append("Live updates: 0 to %d seconds" % settings.MAX_WAIT)
    if "delegateAdmins" in body:
        if body["delegateAdmins"] not in ("team", "deny"):
            errors.append("Admins in delegate mode: team or deny")
        values["delegateAdmins"] = body["delegateAdmins"]
    if errors:
        return _answer({"message": "; ".join(errors)}, 400)
    settings.save(values)
    service.reset_caches()
    return _answer({"settings": settings.describe(), "message": "Saved."})


def _summary(catalog):
    """Counts for the connection test: challenges by state, and invalid files (those with an id
    are challenges in state ``invalid``; the others are listed apart)."""
    states = {}
    invalid = len(catalog.get("invalid", []) or [])
    for c in catalog.get("challenges", []) or []:
        state = c.get("state", "?")
        if state == "invalid" and not c.get("launchable"):
            invalid += 1
            continue
        states[state] = states.get(state, 0) + 1
    last = catalog.get("lastSync") or {}
    return {
        "revision": catalog.get("revision"), "challenges": sum(states.values()),
        "states": states, "invalid": invalid,
        "lastSync": {k: last.get(k) for k in ("ok", "at", "code") if k in last},
    }


@bp.route(API + "/admin/test", methods=["POST"])
def admin_test():
    denied = _admin_guard()
    if denied:
        return denied
    service.reset_caches()
    try:
        client = settings.client(timeout=5)
    except NotConfigured:
        return _answer({"ok": False, "message": "Set the Poseidon URL and API key first."})
    try:
        version = client.version()
        catalog = client.catalog()
    except PoseidonUnavailable as err:
        return _answer({"ok": False, "message": "Poseidon is unreachable at %s: %s." % (client.base_url, err.reason)})
    except PoseidonProblem as err:
        if err.code == "E_UNAUTHORIZED":
            return _answer({"ok": False, "message": "Poseidon refused the API key (E_UNAUTHORIZED)."})
        return _answer({"ok": False, "message": "Poseidon answered %s %s." % (err.status, err.code)})
    out = {"ok": True, "version": (version or {}).get("version"), "api": (version or {}).get("api"), "catalog": _summary(catalog or {})}
    try:
        client.incidents()
        out["adminKey"] = True
    except PoseidonError:
        out["adminKey"] = False
    return _answer(out)


@bp.route(API + "/admin/challenges", methods=["GET"])
def admin_challenges():
    denied = _admin_guard()
    if denied:
        return denied
    try:
        client = settings.client()
        raw = client.challenges() or {}
        entries = service.remember_catalog(client, raw)
        data = {"challenges": [{"id": c.get("id"), "name": c.get("name"), "state": c.get("state"), "valid": c.get("valid", True),
                                "scope": c.get("scope"), "expose": [{"name": e.get("name"), "protocol": e.get("protocol")} for e in c.get("expose") or []]}
                               for c in entries.values()],
                # Files Poseidon could not load: which, and why (the first few problems).
                "invalid": [{"file": b.get("file"), "id": b.get("id"),
                             "errors": ["%s:%s %s: %s" % (e.get("line"), e.get("column"), e.get("path"), e.get("message")) for e in (b.get("errors") or [])[:3]]}
                            for b in raw.get("invalid", []) if isinstance(b, dict)]}
        return _answer(data)
    except NotConfigured:
        return _answer({"message": "Set the Poseidon URL and API key first.", "challenges": []}, 503)
    except PoseidonUnavailable:
        return _answer({"message": service.UNREACHABLE, "challenges": []}, 503)
    except PoseidonProblem as err:
        return _answer({"message": "Poseidon answered %s %s." % (err.status, err.code), "challenges": []}, 502)


@bp.route(API + "/admin/bindings", methods=["POST"])
def admin_bind():
    denied = _admin_guard()
    if denied:
        return denied
    body = request.get_json(silent=True) or {}
    try:
        cid = int(body.get("challengeId"))
    except (TypeError, ValueError):
        return _answer({"message": "challengeId: a CTFd challenge id"}, 400)
    pid = str(body.get("poseidonId") or "").strip()
    if not service.DNS_LABEL.match(pid):
        return _answer({"message": "poseidonId: a Poseidon challenge id"}, 400)
    try:
        challenge = PoseidonChallenge.query.filter_by(id=cid).first()
        if challenge is None:
            return _answer({"message": "No poseidon challenge with that id."}, 404)
        challenge.poseidon_id = pid
        db.session.commit()
        return _answer({"id": cid, "poseidonId": pid, "message": "Saved."})
    finally:
        db.session.close()


@bp.route(API + "/admin/instances", methods=["GET"])
def admin_instances():
    denied = _admin_guard()
    if denied:
        return denied
    try:
        client = settings.client()
        now = time.time()
        live = [i for i in client.instances() if service.is_live(i, now)]
    except NotConfigured:
        return _answer({"message": "Set the Poseidon URL and API key first.", "instances": []}, 503)
    except PoseidonUnavailable:
        return _answer({"message": service.UNREACHABLE, "instances": []}, 503)
    except PoseidonProblem as err:
        return _answer({"message": "Poseidon answered %s %s." % (err.status, err.code), "instances": []}, 502)
    try:
        name = _principal_names()
        out = [{"id": i.get("id"), "challenge": i.get("challenge"), "team": i.get("team"), "teamName": name(i.get("team")),
                "user": i.get("user"), "status": i.get("status"), "expiresAt": i.get("expiresAt"), "reason": i.get("reason")}
               for i in live]
        return _answer({"instances": out})
    finally:
        db.session.close()


@bp.route(API + "/admin/instances/<instance_id>/stop", methods=["POST"])
def admin_stop(instance_id):
    denied = _admin_guard()
    if denied:
        return denied
    if not re.match(r"^[0-9a-f]{24}$", instance_id):
        return _answer({"message": "Not an instance id."}, 400)
    try:
        settings.client().stop(instance_id)
        return _answer({"message": "Stopping."})
    except NotConfigured:
        return _answer({"message": "Set the Poseidon URL and API key first."}, 503)
    except PoseidonUnavailable:
        return _answer({"message": service.UNREACHABLE}, 503)
    except PoseidonProblem as err:
        return _answer({"message": "Poseidon answered %s %s." % (err.status, err.code)}, 502)


@bp.route(API + "/admin/incidents", methods=["GET"])
def admin_poseidon_incidents():
    """Poseidon's own incident list (needs an admin key there)."""
    denied = _admin_guard()
    if denied:
        return denied
    try:
        items = settings.client().incidents()
    except NotConfigured:
        return _answer({"message": "Set the Poseidon URL and API key first.", "incidents": []}, 503)
    except PoseidonUnavailable:
        return _answer({"message": service.UNREACHABLE, "incidents": []}, 503)
    except PoseidonProblem as err:
        msg = "Poseidon's incident list needs an admin key." if err.code == "E_FORBIDDEN" else "Poseidon answered %s %s." % (err.status, err.code)
        return _answer({"message": msg, "incidents": []}, 502)
    try:
        name = _principal_names()
        for i in items:
            i["submittedByName"] = name(i.get("submittedBy"))
            i["ownerName"] = name(i.get("owner"))
        return _answer({"incidents": items})
    finally:
        db.session.close()
