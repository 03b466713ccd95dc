"""Database models: the ``poseidon`` challenge type (a CTFd challenge bound to a Poseidon
challenge id) and the flag-sharing incidents the plugin records for CTFd's admins."""
import datetime

from CTFd.models import Challenges, db


class PoseidonChallenge(Challenges):
    __tablename__ = "poseidon_challenge"
    __mapper_args__ = {"polymorphic_identity": "poseidon"}
    id = db.Column(db.Integer, db.ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True)
    poseidon_id = db.Column(db.String(64), nullable=False, default="")

    def __init__(self, *args, **kwargs):
        super(PoseidonChallenge, self).__init__(**kwargs)


class PoseidonIncident(db.Model):
    """A correct flag of another team submitted by this account: who, when, whose, which instance."""

    __tablename__ = "poseidon_incidents"
    id = db.Column(db.Integer, primary_key=True)
    date = db.Column(db.DateTime, default=datetime.datetime.utcnow)
    challenge_id = db.Column(db.Integer, db.ForeignKey("challenges.id", ondelete="CASCADE"))
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="CASCADE"))
    team_id = db.Column(db.Integer, db.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True)
    submitted_by = db.Column(db.String(80))
    owner = db.Column(db.String(80))
    owner_user = db.Column(db.String(80), nullable=True)
    instance = db.Column(db.String(64))

    def __init__(self, *args, **kwargs):
        super(PoseidonIncident, self).__init__(**kwargs)
