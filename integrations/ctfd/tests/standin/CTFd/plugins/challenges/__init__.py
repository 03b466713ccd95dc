"""CTFd.plugins.challenges: BaseChallenge and the challenge-type registry, with CTFd 3.7's
behaviour (create/read/update/delete/attempt/solve/fail). The standard type compares static
flags exactly (CTFd's flag plugins are not part of the stand-in)."""
from CTFd.models import ChallengeFiles, Challenges, Fails, Flags, Hints, Solves, Tags, db
from CTFd.utils.user import get_ip


class BaseChallenge(object):
    id = None
    name = None
    templates = {}
    scripts = {}
    challenge_model = Challenges

    @classmethod
    def create(cls, request):
        data = request.form or request.get_json()
        challenge = cls.challenge_model(**data)
        db.session.add(challenge)
        db.session.commit()
        return challenge

    @classmethod
    def read(cls, challenge):
        return {
            "id": challenge.id, "name": challenge.name, "value": challenge.value,
            "description": challenge.description, "attribution": challenge.attribution,
            "connection_info": challenge.connection_info, "next_id": challenge.next_id,
            "category": challenge.category, "state": challenge.state,
            "max_attempts": challenge.max_attempts, "type": challenge.type,
            "type_data": {"id": cls.id, "name": cls.name, "templates": cls.templates, "scripts": cls.scripts},
        }

    @classmethod
    def update(cls, challenge, request):
        data = request.form or request.get_json()
        for attr, value in data.items():
            setattr(challenge, attr, value)
        db.session.commit()
        return challenge

    @classmethod
    def delete(cls, challenge):
        Fails.query.filter_by(challenge_id=challenge.id).delete()
        Solves.query.filter_by(challenge_id=challenge.id).delete()
        Flags.query.filter_by(challenge_id=challenge.id).delete()
        ChallengeFiles.query.filter_by(challenge_id=challenge.id).delete()
        Tags.query.filter_by(challenge_id=challenge.id).delete()
        Hints.query.filter_by(challenge_id=challenge.id).delete()
        Challenges.query.filter_by(id=challenge.id).delete()
        cls.challenge_model.query.filter_by(id=challenge.id).delete()
        db.session.commit()

    @classmethod
    def attempt(cls, challenge, request):
        data = request.form or request.get_json()
        submission = data["submission"].strip()
        for flag in Flags.query.filter_by(challenge_id=challenge.id).all():
            if flag.content == submission:
                return True, "Correct"
        return False, "Incorrect"

    @classmethod
    def solve(cls, user, team, challenge, request):
        data = request.form or request.get_json()
        db.session.add(Solves(user_id=user.id, team_id=team.id if team else None, challenge_id=challenge.id,
                              ip=get_ip(req=request), provided=data["submission"].strip()))
        db.session.commit()

    @classmethod
    def fail(cls, user, team, challenge, request):
        data = request.form or request.get_json()
        db.session.add(Fails(user_id=user.id, team_id=team.id if team else None, challenge_id=challenge.id,
                             ip=get_ip(request), provided=data["submission"].strip()))
        db.session.commit()


class CTFdStandardChallenge(BaseChallenge):
    id = "standard"
    name = "standard"
    templates = {"create": "/plugins/challenges/assets/create.html", "update": "/plugins/challenges/assets/update.html",
                 "view": "/plugins/challenges/assets/view.html"}
    scripts = {"create": "/plugins/challenges/assets/create.js", "update": "/plugins/challenges/assets/update.js",
               "view": "/plugins/challenges/assets/view.js"}
    challenge_model = Challenges


def get_chal_class(class_id):
    cls = CHALLENGE_CLASSES.get(class_id)
    if cls is None:
        raise KeyError
    return cls


CHALLENGE_CLASSES = {"standard": CTFdStandardChallenge}
