# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One HTTP request for the modules that probe an endpoint or ask an API: ``request(...) -> (status, body)``.

- HTTP error statuses are answers, not exceptions; transport errors raise.
- One deadline per request: connecting, the TLS handshake, sending, the status line, the headers and every read
  of the body share ``timeout``, redirects included. Each wait on the socket only gets what is left of it, so a
  peer that trickles its answer byte by byte fails at the deadline (a per-read timeout would never fire).
- At most ``max_body`` bytes of body are read (1 MiB by default); the rest is never read.
- Redirects are not followed unless asked: ``follow_redirects`` is ``none`` (a redirect raises
  :class:`RedirectNotFollowed`, saying where it pointed), ``same_origin`` (follow while the scheme, host and port
  stay those of the URL) or ``all`` (any http/https redirect, at most :data:`MAX_REDIRECTS`).
- Request headers (``Authorization``, cookies, API keys: any of them) and the credentials of the URL's user info
  are only ever sent to the URL's own origin (scheme, host and port). A redirect elsewhere goes without them.

Ansible's ``open_url`` is not used for the exchange: it gives no hold on the socket, so it cannot bound the whole
request. Its TLS context (``make_context``) is, so ``validate_certs``/``ca_path`` behave as before.
"""

import base64
import functools
import http.client
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

try:
    import ssl
except ImportError:  # pragma: no cover - Python without ssl: http:// still works
    ssl = None


from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import (
    HealthProbe,
    RedirectNotFollowed,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_url

MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 5
FOLLOW_REDIRECTS = ("none", "same_origin", "all")
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_SIZE = 65536


class RequestTimeout(socket.timeout):
    """The request did not complete (answer and body) within its one deadline."""


class _Deadline:
    def __init__(self, seconds, clock):
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds

    def remaining(self):
        """Seconds left; RequestTimeout once the deadline has passed."""
        left = self.at - self.clock()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self):
        return RequestTimeout(
            "no complete answer within %ss (one deadline for the whole request: connecting, headers, body and "
            "redirects)" % _seconds(self.seconds)
        )

    def call(self, sock, method, args, kwargs):
        """``method(*args, **kwargs)`` on ``sock`` with what is left of the deadline as its timeout."""
        sock.settimeout(self.remaining())
        try:
            return method(*args, **kwargs)
        except socket.timeout:
            # The socket's timeout was the rest of the deadline: the deadline has passed.
            raise self.expired() from None


def _seconds(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------
# Sockets and connections whose every wait is bounded by the request's deadline
# --------------------------------------------------------------------------------------------


class _BoundedWaits:
    """Gives each send/receive of the socket it is mixed into only what is left of the request's deadline."""

    deadline = None

    def _bounded(self, method, *args, **kwargs):
        if self.deadline is None:
            return method(*args, **kwargs)
        return self.deadline.call(self, method, args, kwargs)

    def recv(self, *args, **kwargs):
        return self._bounded(super().recv, *args, **kwargs)

    def recv_into(self, *args, **kwargs):
        return self._bounded(super().recv_into, *args, **kwargs)

    def send(self, *args, **kwargs):
        return self._bounded(super().send, *args, **kwargs)

    def sendall(self, *args, **kwargs):
        return self._bounded(super().sendall, *args, **kwargs)


class _DeadlineSocket(_BoundedWaits, socket.socket):
    """A TCP socket whose every wait is bounded by the request's deadline."""


if ssl is not None:

    class _DeadlineSSLSocket(_BoundedWaits, ssl.SSLSocket):
        """The TLS counterpart of :class:`_DeadlineSocket` (the handshake is bounded by the connect-time rest)."""


class _DeadlineConnectionMixin:
    def __init__(self, *args, **kwargs):
        self._deadline = kwargs.pop("deadline")
        super().__init__(*args, **kwargs)
        # http.client opens its TCP connection through this attribute (HTTP, HTTPS and proxy tunnels alike).
        self._create_connection = self._open_socket

    def _open_socket(self, address, timeout=None, source_address=None):
        try:
            plain = socket.create_connection(address, self._deadline.remaining(), source_address)
        except socket.timeout:
            raise self._deadline.expired() from None
        sock = _DeadlineSocket(plain.family, plain.type, plain.proto, plain.detach())
        sock.deadline = self._deadline
        sock.settimeout(self._deadline.remaining())
        return sock


class _HTTPConnection(_DeadlineConnectionMixin, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        # The context's sslsocket_class made this a _DeadlineSSLSocket.
        self.sock.deadline = self._deadline


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, deadline=self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline, context):
        super().__init__(context=context)
        self._deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, deadline=self._deadline), req, context=self._context)


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Every 3xx comes back as an answer (HTTPError); :func:`request` decides whether to follow it."""

    def http_error_302(self, req, fp, code, msg, headers):
        return None

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


# --------------------------------------------------------------------------------------------
# Origins, credentials, headers
# --------------------------------------------------------------------------------------------


def _origin(url):
    """``(scheme, host, port)`` of an http(s) URL; ValueError for a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port  # ValueError when out of range or not a number
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _show_origin(origin):
    scheme, host, port = origin
    return "%s://%s:%s" % (scheme, "[%s]" % host if ":" in host else host, port)


def _without_userinfo(url):
    """``(url without user info and fragment, Basic authorization value or None)``."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    authorization = None
    if at:
        user, _colon, password = userinfo.partition(":")
        token = "%s:%s" % (unquote(user), unquote(password))
        authorization = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return urlunsplit((parts.scheme, hostport, parts.path or "/", parts.query, "")), authorization


def check_headers(headers):
    """Refuse header names or values that would break the request line; never show a value (they are secrets)."""
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not name or any(c in name for c in " \t\r\n:\0"):
            raise ValidationError("Invalid HTTP header name %r: use a name such as Authorization or X-Api-Key." % name)
        text = value if isinstance(value, str) else str(value)
        if any(c in text for c in "\r\n\0"):
            raise ValidationError(
                "The value of HTTP header %s contains a line break or NUL character; it was not sent (the value "
                "is not shown because header values are treated as secrets)." % name
            )
    return headers


def _check_follow_redirects(follow_redirects):
    if follow_redirects not in FOLLOW_REDIRECTS:
        raise ValidationError(
            "follow_redirects must be one of %s, got %r." % (", ".join(FOLLOW_REDIRECTS), follow_redirects)
        )


def _check_url(url):
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        shown = redact_url(url) if isinstance(url, str) else url
        raise ValidationError("URL must start with http:// or https://, got %r." % (shown,))
    try:
        _origin(url)
    except ValueError:
        raise ValidationError("URL %s has an invalid port." % redact_url(url)) from None


def _tls_context(validate_certs, ca_path):
    if ssl is None:
        raise ValidationError("https:// URLs need Python's ssl module, which this Python lacks; use http://.")
    # Imported here: ansible.module_utils.urls pulls in cryptography (about 50 ms per module run), and most
    # probes are plain http:// to the app on its own host.
    from ansible.module_utils.urls import make_context

    context = make_context(cafile=ca_path, validate_certs=validate_certs)
    context.sslsocket_class = _DeadlineSSLSocket
    return context


# --------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------


def _read_body(response, max_body):
    """At most ``max_body`` bytes of the body; each socket wait is bounded by the deadline."""
    body = bytearray()
    while len(body) < max_body:
        data = response.read(min(_READ_SIZE, max_body - len(body)))
        if not data:
            break
        body += data
    return bytes(body)


def _open(url, method, headers, deadline, context):
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline, context), _NoRedirectHandler())
    req = urllib.request.Request(url, method=method)
    for name, value in headers.items():
        req.add_header(name, value)
    try:
        return opener.open(req, timeout=deadline.remaining())
    except urllib.error.HTTPError as exc:
        return exc  # an answer too: status, headers and body, like any response
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.timeout):
            raise deadline.expired() from None
        raise
    except socket.timeout:
        raise deadline.expired() from None


def request(
    url,
    timeout,
    method="GET",
    headers=None,
    validate_certs=True,
    ca_path=None,
    agent=None,
    max_body=MAX_BODY,
    follow_redirects="none",
    max_redirects=MAX_REDIRECTS,
    clock=None,
):
    """One request: ``(status, body)``, an HTTP error status being an answer too; at most ``max_body`` bytes read.

    ``timeout`` is one deadline for the whole request, redirects included (RequestTimeout when it passes). A
    redirect that ``follow_redirects`` does not allow raises :class:`RedirectNotFollowed`.
    """
    _check_follow_redirects(follow_redirects)
    _check_url(url)
    check_headers(headers)
    deadline = _Deadline(timeout, clock or time.monotonic)
    origin = _origin(url)
    current, authorization = _without_userinfo(url)
    user_headers = dict(headers or {})
    if authorization and not any(name.lower() == "authorization" for name in user_headers):
        user_headers["Authorization"] = authorization
    method = method.upper()
    contexts = {}
    hops = 0
    while True:
        hop_origin = _origin(current)
        hop_headers = {"User-Agent": agent or "zerodowntime.rollout"}
        if hop_origin == origin:
            # Credentials belong to the URL's origin: never sent anywhere else.
            hop_headers.update(user_headers)
        context = None
        if hop_origin[0] == "https":
            if "tls" not in contexts:
                contexts["tls"] = _tls_context(validate_certs, ca_path)
            context = contexts["tls"]
        response = _open(current, method, hop_headers, deadline, context)
        try:
            status = response.code if isinstance(response, urllib.error.HTTPError) else response.status
            location = response.headers.get("Location") if status in _REDIRECT_STATUSES else None
            if not location:
                return status, _read_body(response, max_body)
            pointed = urljoin(current, location.strip().replace(" ", "%20"))
            refusal = _refuse_redirect(status, pointed, origin, follow_redirects, hops, max_redirects)
            if refusal:
                raise RedirectNotFollowed(refusal, status, redact_url(pointed), _read_body(response, max_body))
            # User info in a Location is dropped: credentials come from the URL the user gave, for its origin only.
            target = _without_userinfo(pointed)[0]
        finally:
            response.close()
        hops += 1
        if method != "HEAD" and (status == 303 or (status in (301, 302) and method == "POST")):
            method = "GET"  # what browsers do; 307 and 308 keep the method
        current = target


def _refuse_redirect(status, target, origin, follow_redirects, hops, max_redirects):
    """Why the redirect to ``target`` is not followed, or None to follow it."""
    shown = redact_url(target)
    if len(shown) > 300:
        shown = shown[:300] + "..."
    if follow_redirects == "none":
        return (
            "redirect (%d) to %s not followed: follow_redirects is none. Probe the final URL, or allow redirects "
            "with follow_redirects" % (status, shown)
        )
    if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
        return "redirect (%d) to %s not followed: only http and https redirects are followed" % (status, shown)
    try:
        target_origin = _origin(target)
    except ValueError:
        return "redirect (%d) to %s not followed: its port is invalid" % (status, shown)
    if follow_redirects == "same_origin" and target_origin != origin:
        return (
            "redirect (%d) to %s not followed: it leaves %s, and follow_redirects is same_origin (same scheme, host "
            "and port only). Probe the final URL, or set follow_redirects to all"
            % (status, shown, _show_origin(origin))
        )
    if hops >= max_redirects:
        return "redirect (%d) to %s not followed: more than %d redirects in a row" % (status, shown, max_redirects)
    return None


def make_fetch(
    url,
    method="GET",
    headers=None,
    validate_certs=True,
    ca_path=None,
    agent="zerodowntime.rollout",
    follow_redirects="none",
    max_body=MAX_BODY,
):
    """A ``fetch(timeout) -> (status, body)`` for one URL, as the probes want it (see :func:`request`)."""
    check_headers(headers)
    _check_follow_redirects(follow_redirects)

    def fetch(timeout):
        return request(url, timeout, method, headers, validate_certs, ca_path, agent, max_body, follow_redirects)

    return fetch


def readiness_probe(params, consecutive_successes, timeout, clock=None, sleep=None):
    """A HealthProbe from the modules' ``health_*`` options (see the readiness doc fragment)."""
    url = params.get("health_url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        shown = redact_url(url) if isinstance(url, str) else url
        raise ValidationError("health_url must start with http:// or https://, got %r." % (shown,))
    options = {}
    if params.get("health_json_path"):
        options["json_path"] = params["health_json_path"]
        value = params.get("health_json_value")
        if value is not None and not (isinstance(value, str) and value == ""):
            options["json_value"] = value
    fetch = make_fetch(
        url,
        headers=params.get("health_headers") or {},
        validate_certs=params.get("health_validate_certs", True),
        agent="zerodowntime.rollout-readiness",
        follow_redirects=params.get("health_follow_redirects") or "none",
    )
    return HealthProbe(
        fetch,
        url=url,
        status_codes=params.get("health_status_codes") or [200],
        body_regex=params.get("health_body_regex") or None,
        consecutive_successes=consecutive_successes,
        interval=params.get("health_interval") or 0.2,
        timeout=timeout,
        request_timeout=params.get("health_request_timeout") or 5,
        clock=clock,
        sleep=sleep,
        **options,
    )


def probe_spec(prefix="", interval=1.0, headers=None):
    """The probe's options (URL, checks, TLS, redirects) named ``prefix + name``, with these defaults (None: none)."""
    spec = {
        "url": {"type": "str", "required": True},
        "headers": {"type": "dict", "no_log": True},
        "status_codes": {"type": "list", "elements": "int", "default": [200]},
        "body_regex": {"type": "str"},
        "json_path": {"type": "str"},
        "json_value": {"type": "raw"},
        "interval": {"type": "float", "default": interval},
        "request_timeout": {"type": "float", "default": 5},
        "validate_certs": {"type": "bool", "default": True},
        "follow_redirects": {"type": "str", "default": "none", "choices": list(FOLLOW_REDIRECTS)},
    }
    if headers is not None:
        spec["headers"]["default"] = headers
    return {prefix + name: option for name, option in spec.items()}


READINESS_SPEC = probe_spec("health_", interval=0.2, headers={})
