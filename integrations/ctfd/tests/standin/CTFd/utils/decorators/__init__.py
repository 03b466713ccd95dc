"""CTFd.utils.decorators (the two the plugin may use), with CTFd's behaviour."""
import functools

from flask import abort, redirect, request

from CTFd.utils.user import authed, is_admin


def authed_only(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        if authed():
            return f(*args, **kwargs)
        if request.content_type == "application/json":
            abort(403)
        return redirect("/login")

    return wrapper


def admins_only(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        if is_admin():
            return f(*args, **kwargs)
        if request.content_type == "application/json":
            abort(403)
        return redirect("/login")

    return wrapper
