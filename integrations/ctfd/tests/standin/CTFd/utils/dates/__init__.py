"""CTFd.utils.dates, as in CTFd 3.7 (start/end/paused/view_after_ctf configs)."""
import time

from CTFd.utils import get_config


def ctftime():
    start = int(get_config("start") or 0)
    end = int(get_config("end") or 0)
    now = time.time()
    if start and end:
        return start < now < end
    if start and not end:
        return start < now
    if end and not start:
        return now < end
    return True


def ctf_paused():
    return bool(get_config("paused"))


def ctf_started():
    return time.time() > int(get_config("start") or 0)


def ctf_ended():
    if int(get_config("end") or 0):
        return time.time() > int(get_config("end") or 0)
    return False


def view_after_ctf():
    return get_config("view_after_ctf")
