"""CTFd.utils.user: the session's user (``session["id"]``), their team, admin-ness."""
from flask import request, session

from CTFd.models import Users


def authed():
    return bool(session.get("id", False))


def get_current_user():
    if authed():
        return Users.query.filter_by(id=session["id"]).first()
    return None


def get_current_team():
    if authed():
        user = get_current_user()
        return user.team if user else None
    return None


def is_admin():
    if authed():
        user = get_current_user()
        return bool(user and user.type == "admin")
    return False


def get_ip(req=None):
    return (req or request).remote_addr
