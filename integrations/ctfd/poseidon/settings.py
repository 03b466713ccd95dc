"""The plugin's settings, kept in CTFd's config table; the environment may set the URL and key
instead (``CTFD_POSEIDON_URL``, ``CTFD_POSEIDON_API_KEY``), which then win and keep the key
out of the database. The key is never sent to a browser: the admin page sees whether one is set
and a short fingerprint of it."""
import hashlib
import os

from CTFd.utils import get_config, set_config

from .client import Client, NotConfigured

URL = "poseidon_url"
KEY = "poseidon_api_key"
PREFIX = "poseidon_principal_prefix"
WAIT = "poseidon_wait_seconds"
ADMINS = "poseidon_delegate_admins"

ENV_URL = "CTFD_POSEIDON_URL"
ENV_KEY = "CTFD_POSEIDON_API_KEY"

DEFAULT_WAIT = 25
MAX_WAIT = 55


def _text(value):
    if value is None or value is KeyError:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def url():
    return os.environ.get(ENV_URL) or _text(get_config(URL))


def api_key():
    return os.environ.get(ENV_KEY) or _text(get_config(KEY))


def prefix():
    return _text(get_config(PREFIX))


def wait_seconds():
    raw = _text(get_config(WAIT))
    try:
        value = int(raw) if raw != "" else DEFAULT_WAIT
    except ValueError:
        value = DEFAULT_WAIT
    return max(0, min(MAX_WAIT, value))


def delegate_admins():
    """``team`` (admins are answered as their own team, if any) or ``deny``."""
    return "deny" if _text(get_config(ADMINS)) == "deny" else "team"


def client(timeout=None):
    """A Client for the configured server; NotConfigured when URL or key is missing."""
    kwargs = {} if timeout is None else {"timeout": timeout}
    return Client(url(), api_key(), **kwargs)


def fingerprint(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8] if secret else ""


def describe():
    """The settings as the admin page may show them (the key only as set/unset + fingerprint)."""
    key = api_key()
    return {
        "url": url(),
        "urlFromEnv": bool(os.environ.get(ENV_URL)),
        "keySet": bool(key),
        "keyFromEnv": bool(os.environ.get(ENV_KEY)),
        "keyFingerprint": fingerprint(key),
        "prefix": prefix(),
        "waitSeconds": wait_seconds(),
        "delegateAdmins": delegate_admins(),
    }


def save(values):
    """Stores what the admin sent; an empty or missing ``apiKey`` keeps the stored key."""
    if "url" in values:
        set_config(URL, values["url"])
    if values.get("apiKey"):
        set_config(KEY, values["apiKey"])
    if values.get("clearApiKey"):
        set_config(KEY, "")
    if "prefix" in values:
        set_config(PREFIX, values["prefix"])
    if "waitSeconds" in values:
        set_config(WAIT, str(values["waitSeconds"]))
    if "delegateAdmins" in values:
        set_config(ADMINS, values["delegateAdmins"])


def configured():
    try:
        client()
        return True
    except NotConfigured:
        return False
