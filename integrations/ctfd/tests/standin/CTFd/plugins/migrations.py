from flask import current_app


def upgrade(plugin_name=None, revision=None, lower="current"):
    current_app.db.create_all()
