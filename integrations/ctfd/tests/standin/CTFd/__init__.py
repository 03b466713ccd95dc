"""A minimal stand-in for CTFd 3.7.7, for the Poseidon plugin's tests only.

It stands for the parts of CTFd the plugin meets, with CTFd's names and behaviour: the module
paths the plugin imports (``CTFd.models``, ``CTFd.plugins``, ``CTFd.plugins.challenges``,
``CTFd.utils.*``, ``CTFd.exceptions.challenges``), plugin loading from a plugins directory
(``CTFd.plugins.<folder>.load(app)``), the template loader (theme templates, then
``plugins/...`` paths), CTFd's CSRF rule (session nonce in ``CSRF-Token`` for JSON requests) and
ban check, the challenge API the theme calls (``GET /api/v1/challenges/<id>`` rendering the type's
view template, ``POST /api/v1/challenges/attempt`` running attempt/solve/fail), and a challenges
page whose modal is rendered the way CTFd 3.7's core-beta theme does it (see
templates/challenges.html). Sign-in is a test-only route. Nothing here is CTFd's code beyond the
copied modal markup.
"""
import os
import secrets

import jinja2
from flask import Flask, abort, jsonify, redirect, render_template, request, session

from CTFd.models import Challenges, Solves, Teams, Users, db
from CTFd.plugins import init_plugins
from CTFd.plugins.challenges import get_chal_class
from CTFd.utils import get_config, set_config
from CTFd.utils.user import authed, get_current_team, get_current_user, is_admin

HERE = os.path.dirname(os.path.abspath(__file__))


def create_app(ctfd_root, database_uri="sqlite://", user_mode="teams", secret_key=None):
    """``ctfd_root`` holds ``plugins/<name>/`` (each a plugin folder, as in ``CTFd/plugins``)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(16),
        SQLALCHEMY_DATABASE_URI=database_uri,
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"check_same_thread": False}},
    )
    app.ctfd_root = ctfd_root
    app.plugins_dir = os.path.join(ctfd_root, "plugins")
    app.jinja_loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
        jinja2.PrefixLoader({"plugins": jinja2.FileSystemLoader(app.plugins_dir)}),
    ])
    db.init_app(app)
    app.db = db
    with app.app_context():
        db.create_all()
        set_config("user_mode", user_mode)
        _request_processors(app)
        _routes(app)
        init_plugins(app)
    return app


def _request_processors(app):
    @app.before_request
    def csrf():
        func = app.view_functions.get(request.endpoint)
        if func is None:
            abort(404)
        if hasattr(func, "_bypass_csrf"):
            return
        if request.headers.get("Authorization"):
            return
        if not session.get("nonce"):
            session["nonce"] = secrets.token_hex(32)
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            if request.content_type == "application/json":
                if session["nonce"] != request.headers.get("CSRF-Token"):
                    abort(403)
            if request.content_type != "application/json":
                if session["nonce"] != request.form.get("nonce"):
                    abort(403)

    @app.before_request
    def banned():
        if authed():
            user = get_current_user()
            team = get_current_team()
            if (user and user.banned) or (team and team.banned):
                abort(403)

    @app.teardown_appcontext
    def close(_exc):
        db.session.remove()


def _routes(app):
    @app.route("/test/login/<int:user_id>")
    def test_login(user_id):
        """Test-only sign-in (CTFd's login form is out of scope)."""
        session.clear()
        session["id"] = user_id
        session["nonce"] = secrets.token_hex(32)
        return redirect(request.args.get("next", "/challenges"))

    @app.route("/test/logout")
    def test_logout():
        session.clear()
        return redirect("/challenges")

    @app.route("/challenges")
    def challenges_page():
        user = get_current_user()
        team = get_current_team()
        visible = Challenges.query.filter(Challenges.state == "visible").order_by(Challenges.id).all() if authed() else []
        return render_template("challenges.html", challenges=visible, user=user, team=team,
                               nonce=session.get("nonce", ""), user_mode=get_config("user_mode"))

    @app.route("/api/v1/challenges/<int:challenge_id>")
    def api_challenge(challenge_id):
        chal = Challenges.query.filter_by(id=challenge_id).first_or_404()
        if chal.state != "visible" and not is_admin():
            abort(404)
        chal_class = get_chal_class(chal.type)
        response = chal_class.read(challenge=chal)
        response["view"] = render_template(chal_class.templates["view"].lstrip("/"), solves=0, solved_by_me=False, files=[],
                                           tags=[], hints=[], max_attempts=chal.max_attempts or 0, attempts=0, challenge=chal)
        db.session.close()
        return jsonify({"success": True, "data": response})

    @app.route("/api/v1/challenges/attempt", methods=["POST"])
    def api_attempt():
        if not authed():
            abort(403)
        data = request.get_json() or {}
        user = get_current_user()
        team = get_current_team()
        if get_config("user_mode") == "teams" and team is None:
            abort(403)
        chal = Challenges.query.filter_by(id=data.get("challenge_id")).first_or_404()
        if chal.state != "visible" and not is_admin():
            abort(404)
        chal_class = get_chal_class(chal.type)
        solved = Solves.query.filter_by(challenge_id=chal.id, **({"team_id": team.id} if team else {"user_id": user.id})).first()
        if solved:
            return jsonify({"success": True, "data": {"status": "already_solved", "message": "You already solved this"}})
        status, message = chal_class.attempt(chal, request)
        if status:
            chal_class.solve(user=user, team=team, challenge=chal, request=request)
            return jsonify({"success": True, "data": {"status": "correct", "message": message}})
        chal_class.fail(user=user, team=team, challenge=chal, request=request)
        return jsonify({"success": True, "data": {"status": "incorrect", "message": message}})

    @app.route("/api/v1/challenges", methods=["POST"])
    def api_create():
        if not is_admin():
            abort(403)
        data = request.get_json() or {}
        chal_class = get_chal_class(data.get("type", "standard"))
        from CTFd.exceptions.challenges import ChallengeCreateException

        try:
            chal = chal_class.create(request)
        except ChallengeCreateException as e:
            return jsonify({"success": False, "errors": {"": [str(e)]}}), 500
        return jsonify({"success": True, "data": chal_class.read(chal)})

    @app.route("/api/v1/challenges/<int:challenge_id>", methods=["PATCH", "DELETE"])
    def api_change(challenge_id):
        if not is_admin():
            abort(403)
        chal = Challenges.query.filter_by(id=challenge_id).first_or_404()
        chal_class = get_chal_class(chal.type)
        if request.method == "DELETE":
            chal_class.delete(chal)
            return jsonify({"success": True})
        from CTFd.exceptions.challenges import ChallengeUpdateException

        try:
            chal = chal_class.update(chal, request)
        except ChallengeUpdateException as e:
            return jsonify({"success": False, "errors": {"": [str(e)]}}), 500
        return jsonify({"success": True, "data": chal_class.read(chal)})

    @app.route("/admin/challenges/<int:challenge_id>")
    def admin_challenge(challenge_id):
        if not is_admin():
            abort(403)
        chal = Challenges.query.filter_by(id=challenge_id).first_or_404()
        chal_class = get_chal_class(chal.type)
        return render_template(chal_class.templates["update"].lstrip("/"), challenge=chal)

    @app.route("/admin/challenges/new/<type_id>")
    def admin_new(type_id):
        if not is_admin():
            abort(403)
        return render_template(get_chal_class(type_id).templates["create"].lstrip("/"))


def seed(app, teams, admins=("admin",), users_mode=False):
    """Teams ``{"red": ["alice", "bob"], ...}`` (or users only in user mode) and admins; returns
    ``{name: user id}`` and ``{team name: team id}``."""
    users, team_ids = {}, {}
    with app.app_context():
        for team_name, members in teams.items():
            team = None
            if not users_mode:
                team = Teams(name=team_name)
                db.session.add(team)
                db.session.flush()
                team_ids[team_name] = team.id
            for m in members:
                u = Users(name=m, email="%s@example.org" % m, type="user", team_id=team.id if team else None)
                db.session.add(u)
                db.session.flush()
                users[m] = u.id
        for a in admins:
            u = Users(name=a, email="%s@example.org" % a, type="admin")
            db.session.add(u)
            db.session.flush()
            users[a] = u.id
        db.session.commit()
    return users, team_ids
