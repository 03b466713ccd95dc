from CTFd.utils import get_config


def user_mode():
    return get_config("user_mode")


def is_users_mode():
    return user_mode() == "users"


def is_teams_mode():
    return user_mode() == "teams"
