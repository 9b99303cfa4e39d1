# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""HTTP readiness probe: N successes in a row within a deadline.

:class:`HealthProbe` knows nothing about HTTP libraries: it calls ``fetch(timeout)``, which returns
``(status_code, body_bytes)`` for any answer (also 4xx/5xx) and raises for transport errors
(refused, timeout, TLS), or :class:`RedirectNotFollowed` for a redirect it may not follow. Time comes
from injectable ``clock``/``sleep`` through the collection's generic poller (:func:`._waiter.wait_for`),
so unit tests script responses and run in microseconds.

A failed attempt (transport error, unexpected status, body or JSON mismatch) resets the streak.
Header values never reach this module, so they cannot leak into results or messages.
"""

import json
import math
import re
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError, WaitTimeout
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text, redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._waiter import wait_for

BODY_SNIPPET = 300
_UNSET = object()


class RedirectNotFollowed(Exception):
    """``fetch`` raises this for a redirect it was not allowed to follow.

    ``status`` and ``body`` are the redirect's own answer, ``location`` where it pointed (already redacted). A
    probe whose ``status_codes`` list the redirect's status takes it as the answer; otherwise the attempt fails
    with this message.
    """

    def __init__(self, msg, status, location, body=b""):
        super().__init__(msg)
        self.status = status
        self.location = location
        self.body = body


class HealthCheckTimeout(WaitTimeout):
    """The endpoint did not answer successfully often enough in a row before the deadline.

    ``details`` holds the probe result (attempts, successes, elapsed, status, last_error) so that a
    module can return it next to the message.
    """

    def __init__(self, msg, result):
        super().__init__(
            msg,
            last_state=result.get("status"),
            elapsed=result.get("elapsed", 0.0),
            attempts=result.get("attempts", 0),
            last_error=result.get("last_error"),
        )
        self.details = dict(result)


def parse_json_path(path):
    """Split ``checks.database`` / ``items.0.name`` into components; refuse empty components."""
    if not isinstance(path, str) or not path:
        raise ValidationError("json_path must be a non-empty dotted path such as 'checks.database'.")
    parts = path.split(".")
    if any(part == "" for part in parts):
        raise ValidationError("json_path %r has an empty component (check the dots)." % path)
    return parts


def lookup_json(document, parts):
    """Walk ``parts`` into a decoded JSON document; list components are integer indices. Raises LookupError."""
    current = document
    walked = []
    for part in parts:
        where = ".".join(walked) or "the document root"
        if isinstance(current, dict):
            if part not in current:
                raise LookupError("key %r not found under %s" % (part, where))
            current = current[part]
        elif isinstance(current, list):
            try:
                index = int(part)
            except ValueError:
                raise LookupError("%s is a list and %r is not an index" % (where, part)) from None
            if not -len(current) <= index < len(current):
                raise LookupError("index %d is out of range for %s (length %d)" % (index, where, len(current)))
            current = current[index]
        else:
            raise LookupError("%s is a %s, cannot look up %r in it" % (where, _json_type(current), part))
        walked.append(part)
    return current


def _json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _normalize(value):
    """Comparable form: JSON true == 'true' == True, 1 == 1.0 == '1', lists and objects element-wise."""
    if isinstance(value, bool):
        return ("bool", value)
    if value is None:
        return ("null", None)
    if isinstance(value, (int, float)):
        return ("num", value)
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered in ("true", "false"):
            return ("bool", lowered == "true")
        if lowered == "null":
            return ("null", None)
        if text[:1] in ("[", "{"):
            try:
                return _normalize(json.loads(text))
            except ValueError:
                pass
        try:
            return ("num", int(text))
        except ValueError:
            pass
        try:
            number = float(text)
            if not (math.isnan(number) or math.isinf(number)):
                return ("num", number)
        except ValueError:
            pass
        return ("str", value)
    if isinstance(value, (list, tuple)):
        return ("list", [_normalize(item) for item in value])
    if isinstance(value, dict):
        return ("dict", {str(key): _normalize(item) for key, item in value.items()})
    return ("other", repr(value))


def values_match(actual, expected):
    """True when a JSON value and an expected (YAML/Jinja) value mean the same thing."""
    return _normalize(actual) == _normalize(expected)


class HealthProbe:
    """Poll an endpoint until ``consecutive_successes`` answers in a row pass every check.

    :param fetch: ``fetch(timeout) -> (status, body_bytes)``; raises on transport errors.
    :param url: only used in messages (user info and query string are redacted).
    """

    def __init__(
        self,
        fetch,
        url="the endpoint",
        status_codes=(200,),
        body_regex=None,
        json_path=None,
        json_value=_UNSET,
        consecutive_successes=3,
        interval=1.0,
        timeout=120.0,
        request_timeout=5.0,
        clock=None,
        sleep=None,
    ):
        if not status_codes:
            raise ValidationError("status_codes must list at least one HTTP status code.")
        for code in status_codes:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise ValidationError("status_codes must be HTTP status codes (100-599), got %r." % (code,))
        if isinstance(consecutive_successes, bool) or consecutive_successes < 1:
            raise ValidationError("consecutive_successes must be 1 or more, got %r." % (consecutive_successes,))
        if interval is None or interval <= 0:
            raise ValidationError("interval must be more than 0 seconds, got %r." % (interval,))
        if timeout is None or timeout < 0:
            raise ValidationError("timeout must be 0 or more seconds, got %r." % (timeout,))
        if request_timeout is None or request_timeout <= 0:
            raise ValidationError("request_timeout must be more than 0 seconds, got %r." % (request_timeout,))
        self.fetch = fetch
        self.url = redact_url(url) if "://" in url else redact_text(url)
        self.status_codes = list(status_codes)
        self.body_regex = None
        if body_regex:
            try:
                self.body_regex = re.compile(body_regex)
            except re.error as exc:
                raise ValidationError(
                    "body_regex %r is not a valid regular expression: %s." % (body_regex, exc)
                ) from None
        self.json_parts = parse_json_path(json_path) if json_path else None
        self.json_path = json_path
        self.json_value = json_value
        if json_value is not _UNSET and not json_path:
            raise ValidationError("json_value needs json_path.")
        self.needed = consecutive_successes
        self.interval = float(interval)
        self.timeout = float(timeout)
        self.request_timeout = float(request_timeout)
        self.clock = clock
        self.sleep = sleep

    def evaluate(self, status, body):
        """Why a response does not pass, or None when it passes."""
        if status not in self.status_codes:
            return "status %s is not one of %s" % (status, self.status_codes)
        if self.body_regex is None and self.json_parts is None:
            return None
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        if self.body_regex is not None and not self.body_regex.search(text):
            return "body does not match body_regex %r" % self.body_regex.pattern
        if self.json_parts is not None:
            try:
                document = json.loads(text)
            except ValueError as exc:
                return "body is not JSON (%s)" % exc
            try:
                value = lookup_json(document, self.json_parts)
            except LookupError as exc:
                return "json_path %s: %s" % (self.json_path, exc)
            if self.json_value is _UNSET:
                if not value:
                    return "json_path %s is %s (empty or false)" % (self.json_path, json.dumps(value))
            elif not values_match(value, self.json_value):
                return "json_path %s is %s, expected %s" % (
                    self.json_path,
                    json.dumps(value)[:100],
                    json.dumps(self.json_value, default=repr)[:100],
                )
        return None

    def run(self):
        """Probe until ready; returns the result dict, raises HealthCheckTimeout at the deadline."""
        clock = self.clock or time.monotonic
        start = clock()
        deadline = start + self.timeout
        tally = {"attempts": 0, "streak": 0, "best": 0, "status": None, "last_error": None, "body": b""}

        def attempt():
            remaining = deadline - clock()
            # Never less than a second (or request_timeout), so the final attempt at the deadline is real.
            per_request = min(self.request_timeout, max(remaining, 1.0))
            tally["attempts"] += 1
            try:
                status, body = self.fetch(per_request)
            except RedirectNotFollowed as exc:
                # A redirect is an answer: it passes when its status is listed, else the attempt fails and says why.
                tally["status"] = exc.status
                tally["body"] = exc.body or b""
                error = self.evaluate(exc.status, exc.body or b"") if exc.status in self.status_codes else str(exc)
            except Exception as exc:
                tally["status"] = None
                tally["body"] = b""
                error = "request failed: %s" % (redact_text(str(exc)),)
            else:
                tally["status"] = status
                tally["body"] = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
                error = self.evaluate(status, body)
            if error is None:
                tally["streak"] += 1
                tally["best"] = max(tally["best"], tally["streak"])
            else:
                tally["streak"] = 0
                tally["last_error"] = error
            return tally["streak"]

        try:
            outcome = wait_for(
                attempt,
                lambda streak: streak >= self.needed,
                timeout=self.timeout,
                poll_interval=self.interval,
                clock=clock,
                sleep=self.sleep,
                what="%s to be ready" % self.url,
            )
        except WaitTimeout as exc:
            result = self._result(tally, exc.elapsed)
            body = tally["body"]
            msg = "%s was not ready after %.1fs: %d attempts, %d consecutive successes needed (longest streak %d). " % (
                self.url,
                exc.elapsed,
                tally["attempts"],
                self.needed,
                tally["best"],
            )
            msg += "Last status: %s. Last error: %s." % (
                tally["status"] if tally["status"] is not None else "none (no answer)",
                tally["last_error"],
            )
            if body:
                msg += " Last body (first %d of %d bytes): %r" % (
                    min(len(body), BODY_SNIPPET),
                    len(body),
                    redact_text(body[:BODY_SNIPPET].decode("utf-8", "replace")),
                )
            raise HealthCheckTimeout(msg, result) from None
        result = self._result(tally, outcome.elapsed)
        result["msg"] = "%s is ready: %d consecutive successes after %d attempts in %.1fs" % (
            self.url,
            tally["streak"],
            tally["attempts"],
            outcome.elapsed,
        )
        return result

    @staticmethod
    def _result(tally, elapsed):
        return {
            "attempts": tally["attempts"],
            "successes": tally["streak"],
            "elapsed": round(elapsed, 3),
            "status": tally["status"],
            "last_error": tally["last_error"],
        }


def probe_http(fetch, url, check_mode=False, method="GET", **options):
    """Module entry point: run a :class:`HealthProbe` with ``options``; returns the module result.

    In check mode, methods other than GET/HEAD/OPTIONS are not sent (they might change something).
    """
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValidationError("url must start with http:// or https://, got %r." % (redact_text(url),))
    json_value = options.pop("json_value", None)
    if json_value is not None:
        options["json_value"] = json_value
    probe = HealthProbe(fetch, url=url, **options)
    if check_mode and method.upper() not in ("GET", "HEAD", "OPTIONS"):
        return {
            "changed": False,
            "skipped": True,
            "attempts": 0,
            "successes": 0,
            "elapsed": 0.0,
            "status": None,
            "last_error": None,
            "msg": "check mode: %s requests are not sent" % method.upper(),
        }
    result = probe.run()
    result["changed"] = False
    return result
