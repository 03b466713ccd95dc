"""CTFd.utils: config values (as CTFd: digit strings come back as ints, "true"/"false" as bools)."""
from CTFd.models import Configs, db


def _get_config(key):
    row = Configs.query.filter_by(key=key).first()
    if row and row.value:
        value = row.value
        if value.isdigit():
            return int(value)
        if value.lower() == "true":
            return True
        if value.lower() == "false":
            return False
        return value
    return KeyError


def get_config(key, default=None):
    value = _get_config(key)
    return default if value is KeyError else value


def set_config(key, value):
    row = Configs.query.filter_by(key=key).first()
    if row:
        row.value = value
    else:
        db.session.add(Configs(key=key, value=value))
    db.session.commit()
