"""Poseidon for CTFd 3.7: per-team instances launched from the challenge modal, flags checked
by Poseidon, delegate-mode forward-auth from the CTFd session, and an admin page.

Install: copy this folder into ``CTFd/plugins/`` and restart CTFd (see README.md).
``client.py`` and ``service.py`` need nothing from CTFd; the rest is imported by ``load``.
"""


def load(app):
    from CTFd.models import db
    from CTFd.plugins import register_admin_plugin_menu_bar, register_plugin_assets_directory
    from CTFd.plugins.challenges import CHALLENGE_CLASSES

    from .challenge_type import ASSETS, PoseidonChallengeType
    from .models import PoseidonChallenge, PoseidonIncident  # noqa: F401 (their tables)
    from .routes import bp

    # Creates the plugin's two tables when missing (on every database CTFd supports).
    with app.app_context():
        db.create_all()
    CHALLENGE_CLASSES["poseidon"] = PoseidonChallengeType
    register_plugin_assets_directory(app, base_path=ASSETS)
    register_admin_plugin_menu_bar("Poseidon", "/admin/poseidon")
    app.register_blueprint(bp)
