"""The ``poseidon`` challenge type: created like any CTFd challenge, bound to a Poseidon
challenge id, its flags checked by Poseidon so that every team has its own."""
import logging
import os

from flask import g

from CTFd.exceptions.challenges import ChallengeCreateException, ChallengeUpdateException
from CTFd.models import db
from CTFd.plugins.challenges import BaseChallenge
from CTFd.utils.config import is_teams_mode

from . import service, settings
from .client import NotConfigured
from .models import PoseidonChallenge, PoseidonIncident

log = logging.getLogger("poseidon.ctfd")

PLUGIN_DIR = os.path.basename(os.path.dirname(os.path.abspath(__file__)))
ASSETS = "/plugins/%s/assets/" % PLUGIN_DIR


def _submission(request):
    data = request.form or request.get_json() or {}
    return str(data.get("submission", "")).strip()


def _check_poseidon_id(data, exc):
    if "poseidon_id" not in data:
        return
    value = str(data.get("poseidon_id") or "").strip()
    if not service.DNS_LABEL.match(value):
        raise exc("Poseidon challenge id: a Poseidon challenge id (lower-case letters, digits and '-') is required")
    data["poseidon_id"] = value


class PoseidonChallengeType(BaseChallenge):
    id = "poseidon"
    name = "poseidon"
    templates = {
        "create": ASSETS + "create.html",
        "update": ASSETS + "update.html",
        "view": ASSETS + "view.html",
    }
    scripts = {
        "create": ASSETS + "create.js",
        "update": ASSETS + "update.js",
        "view": ASSETS + "view.js",
    }
    route = ASSETS
    challenge_model = PoseidonChallenge

    @classmethod
    def create(cls, request):
        data = dict(request.form or request.get_json() or {})
        if "poseidon_id" not in data:
            data["poseidon_id"] = ""
        _check_poseidon_id(data, ChallengeCreateException)
        data["type"] = "poseidon"
        challenge = cls.challenge_model(**data)
        db.session.add(challenge)
        db.session.commit()
        return challenge

    @classmethod
    def update(cls, challenge, request):
        data = dict(request.form or request.get_json() or {})
        _check_poseidon_id(data, ChallengeUpdateException)
        data.pop("type", None)
        for attr, value in data.items():
            setattr(challenge, attr, value)
        db.session.commit()
        return challenge

    @classmethod
    def delete(cls, challenge):
        PoseidonIncident.query.filter_by(challenge_id=challenge.id).delete()
        super().delete(challenge)

    @classmethod
    def attempt(cls, challenge, request):
        """Correct only for the submitting team's own flag. Another team's flag is wrong and is
        recorded as an incident (here and in Poseidon). When Poseidon cannot answer, the attempt
        is wrong but not counted (see ``fail``)."""
        from CTFd.utils.user import get_current_team, get_current_user

        g.poseidon_unchecked = False
        user = get_current_user()
        team = get_current_team() if is_teams_mode() else None
        owner = service.owner_for(user.id if user else None, team.id if team else None, is_teams_mode(), settings.prefix())
        if owner is None:
            g.poseidon_unchecked = True
            return False, "Join a team to submit flags for this challenge."
        binding = PoseidonChallenge.query.filter_by(id=challenge.id).first()
        pid = binding.poseidon_id if binding else ""
        try:
            client = settings.client()
        except NotConfigured:
            g.poseidon_unchecked = True
            return False, "Flags for this challenge cannot be checked yet (not configured). This attempt was not counted."
        if not pid:
            g.poseidon_unchecked = True
            return False, "This challenge is not bound to a Poseidon challenge yet. This attempt was not counted."
        verdict = service.verify_flag(client, owner, pid, _submission(request))
        if not verdict.checked:
            g.poseidon_unchecked = True
            log.warning("flag check unavailable for challenge %s", challenge.id)
            return False, verdict.message
        if verdict.owner:
            cls._record_incident(challenge, user, team, owner, verdict.owner)
        return verdict.correct, verdict.message

    @classmethod
    def _record_incident(cls, challenge, user, team, owner, shared):
        incident = PoseidonIncident(
            challenge_id=challenge.id,
            user_id=user.id,
            team_id=team.id if team else None,
            submitted_by=owner.team,
            owner=str(shared.get("team", ""))[:80],
            owner_user=(str(shared["user"])[:80] if shared.get("user") else None),
            instance=str(shared.get("instance", ""))[:64],
        )
        db.session.add(incident)
        db.session.commit()
        log.warning("flag sharing: %s submitted the flag of %s on challenge %s", owner.team, incident.owner, challenge.id)

    @classmethod
    def fail(cls, user, team, challenge, request):
        # An attempt Poseidon could not check is not held against the player.
        if getattr(g, "poseidon_unchecked", False):
            return
        super().fail(user, team, challenge, request)
