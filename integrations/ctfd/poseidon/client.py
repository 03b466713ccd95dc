"""A small client for Poseidon's REST API, on the standard library only.

``http.client`` rather than ``requests`` or ``urllib``: no dependency beyond what CTFd already
has, no proxy taken from the environment (the API key must never travel through a proxy nobody
configured for it), no redirect followed (a redirect would resend the key elsewhere), and a socket
whose timeout can shrink as a long-poll deadline approaches.

The API key is sent in ``x-api-key`` and appears nowhere else: not in exceptions, reprs or logs.
"""
import http.client
import json
import socket
import ssl
import time
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_TIMEOUT = 5.0
MAX_BODY = 4 * 1024 * 1024
MAX_EVENT_LINE = 64 * 1024
# After a transport failure, calls to that server fail at once for this long: with Poseidon down,
# every panel and flag check answers in milliseconds instead of tying up CTFd's workers.
BREAKER_SECONDS = 5.0
_down_until = {}


def reset_breaker():
    """Forgets recent failures (an admin changed the settings or asks for a fresh test)."""
    _down_until.clear()


class PoseidonError(Exception):
    """Base class. ``str()`` is safe to log: it never contains the key, a flag or a token."""


class PoseidonUnavailable(PoseidonError):
    """Poseidon could not be reached, timed out, or answered something that is not its API."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class PoseidonProblem(PoseidonError):
    """Poseidon answered with an error (``application/problem+json``) and a stable ``code``."""

    def __init__(self, status, code, detail, body=None, retry_after=None):
        super().__init__("Poseidon answered %s %s" % (status, code))
        self.status = status
        self.code = code
        self.detail = detail or ""
        self.body = body if isinstance(body, dict) else {}
        self.retry_after = retry_after


class NotConfigured(PoseidonError):
    """No Poseidon URL or API key has been configured yet."""


def _retry_after(headers, body):
    value = headers.get("retry-after") if headers else None
    if value is None and isinstance(body, dict):
        value = body.get("retryAfterSeconds")
    try:
        return max(1, int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class Client:
    """One Poseidon server: ``Client("http://127.0.0.1:8080", key)``. Thread-safe (no shared state)."""

    def __init__(self, base_url, api_key, timeout=DEFAULT_TIMEOUT):
        if not base_url or not api_key:
            raise NotConfigured("Poseidon URL and API key are required")
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotConfigured("Poseidon URL must be http(s)://host[:port][/path]")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._key = api_key
        self._timeout = timeout
        self.base_url = "%s://%s%s" % (parts.scheme, parts.netloc, self._prefix)

    def __repr__(self):
        return "Client(%r)" % self.base_url

    # -- transport -----------------------------------------------------------------------

    def _connection(self, timeout):
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, body, accept="application/json"):
        headers = {"x-api-key": self._key, "accept": accept, "user-agent": "poseidon-ctfd"}
        # A bodiless POST/DELETE goes without a content-type: older servers refuse an empty JSON body.
        if body is not None:
            headers["content-type"] = "application/json"
        return headers

    def request(self, method, path, body=None, query=None, timeout=None):
        """(status, headers, parsed JSON or None). Raises PoseidonUnavailable on transport failures."""
        if _down_until.get(self.base_url, 0.0) > time.monotonic():
            raise PoseidonUnavailable("unreachable (recently)")
        url = self._prefix + path
        if query:
            url += "?" + urlencode([(k, v) for k, v in query.items() if v is not None])
        payload = None if body is None else json.dumps(body).encode("utf-8")
        conn = self._connection(timeout or self._timeout)
        try:
            conn.request(method, url, body=payload, headers=self._headers(body))
            res = conn.getresponse()
            raw = res.read(MAX_BODY + 1)
            headers = {k.lower(): v for k, v in res.getheaders()}
            status = res.status
        except (OSError, http.client.HTTPException, ssl.SSLError) as err:
            _down_until[self.base_url] = time.monotonic() + BREAKER_SECONDS
            raise PoseidonUnavailable("unreachable (%s)" % type(err).__name__) from None
        finally:
            conn.close()
        _down_until.pop(self.base_url, None)
        if len(raw) > MAX_BODY:
            raise PoseidonUnavailable("answer too large")
        data = None
        if raw:
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise PoseidonUnavailable("answer is not JSON (HTTP %s)" % status) from None
        return status, headers, data

    def call(self, method, path, body=None, query=None, ok=(200, 202), timeout=None):
        """The parsed answer of a successful call; PoseidonProblem for an API error."""
        status, headers, data = self.request(method, path, body=body, query=query, timeout=timeout)
        if status in ok:
            return data
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            raise PoseidonProblem(status, data["code"], data.get("detail"), data, _retry_after(headers, data))
        if status >= 500:
            raise PoseidonUnavailable("answered HTTP %s" % status)
        raise PoseidonProblem(status, "E_HTTP_%s" % status, "", data, _retry_after(headers, data))

    # -- API -----------------------------------------------------------------------------

    def healthz(self):
        return self.call("GET", "/healthz")

    def version(self):
        """``{version, api}``, or None when this Poseidon has no version route yet."""
        try:
            return self.call("GET", "/v1/version")
        except PoseidonProblem as err:
            if err.status == 404:
                return None
            raise

    def challenges(self):
        return self.call("GET", "/v1/challenges")

    def catalog(self):
        return self.call("GET", "/v1/catalog")

    def launch(self, challenge, team, user=None):
        body = {"challenge": challenge, "team": team}
        if user:
            body["user"] = user
        return self.call("POST", "/v1/instances", body=body)

    def instance(self, instance_id):
        return self.call("GET", "/v1/instances/%s" % quote(instance_id, safe=""))

    def instances(self, team=None, challenge=None, user=None, live=None):
        query = {"team": team, "challenge": challenge, "user": user, "live": "true" if live else None}
        return self.call("GET", "/v1/instances", query=query).get("instances", [])

    def stop(self, instance_id):
        return self.call("DELETE", "/v1/instances/%s" % quote(instance_id, safe=""))

    def renew(self, instance_id):
        return self.call("POST", "/v1/instances/%s/renew" % quote(instance_id, safe=""))

    def restart(self, instance_id):
        return self.call("POST", "/v1/instances/%s/restart" % quote(instance_id, safe=""))

    def access(self, instance_id, endpoint=None):
        body = {"endpoint": endpoint} if endpoint else None
        return self.call("POST", "/v1/instances/%s/access" % quote(instance_id, safe=""), body=body, ok=(200,))

    def verify_flag(self, challenge, team, flag):
        return self.call("POST", "/v1/flags/verify", body={"challenge": challenge, "team": team, "flag": flag}, ok=(200,))

    def incidents(self):
        """Newest first (Poseidon's default page, 100). No ``limit``: this Poseidon validates
        query strings without type coercion, so ``?limit=`` is refused as a string."""
        return self.call("GET", "/v1/flags/incidents").get("incidents", [])

    def bypass(self, name, challenge, ttl_seconds=300):
        return self.call("POST", "/v1/access/bypass", body={"name": name, "challenge": challenge, "ttlSeconds": ttl_seconds}, ok=(200,))

    # -- events --------------------------------------------------------------------------

    def events(self, team, deadline):
        """Yields lifecycle events (dicts) of ``team`` from Poseidon's SSE stream until the
        monotonic ``deadline``; the snapshot of the team's instances comes first. Stops quietly at
        the deadline; raises PoseidonUnavailable when the stream cannot be opened."""
        path = self._prefix + "/v1/events?" + urlencode({"team": team})
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        conn = self._connection(min(self._timeout, remaining))
        try:
            try:
                conn.request("GET", path, headers=self._headers(None, accept="text/event-stream"))
                res = conn.getresponse()
            except (OSError, http.client.HTTPException, ssl.SSLError) as err:
                raise PoseidonUnavailable("unreachable (%s)" % type(err).__name__) from None
            if res.status != 200:
                raise PoseidonUnavailable("events answered HTTP %s" % res.status)
            data = []
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    conn.sock.settimeout(remaining)
                    line = res.readline(MAX_EVENT_LINE)
                except (socket.timeout, OSError, http.client.HTTPException, ValueError, AttributeError):
                    return
                if not line:
                    return
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if data:
                        try:
                            yield json.loads("\n".join(data))
                        except ValueError:
                            pass
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        finally:
            conn.close()
