# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Keep secrets out of messages: every URL that reaches a message, a result or the report goes through here.

``redact_url`` replaces a URL's user info with ``***`` and its whole query string with ``***`` (a query
often carries tokens or signatures; which of its values are secret is not knowable in general), and drops
the fragment. ``redact_text`` does the same to every URL found inside a free-text message, and also hides
the value of secret-looking ``key=value`` pairs (``password=``, ``token=``, ``api_key=``,
``X-Amz-Signature=``...), of the same keys in JSON or Python dict text, of ``Authorization:`` headers and
of ``user:password@`` written without a scheme. ``redact_data`` applies ``redact_text`` to every string
of a nested structure (a report, a result); ``redact_params`` redacts the URL options of a module's
parameters, so that the ``invocation`` Ansible adds to the result does not carry them whole.

Redaction errs on the side of hiding too much: these functions only ever shape what is shown, never
what is used.
"""

import re

MASK = "***"

# A URL inside free text: a scheme, then anything up to whitespace or a quote/bracket that ends it.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>()\[\]{}]+""")

# Key names whose values are secrets: any key that contains one of these words, or is one of the short ones.
_SECRET_WORDS = (
    r"passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|signature|credential|auth|session[_-]?key|cookie"
)
_SECRET_KEY = r"(?:[A-Za-z0-9_.-]*(?:%s)[A-Za-z0-9_.-]*|sig|key|pass)" % _SECRET_WORDS
# key=value (query strings, command lines, log lines); the value runs to whitespace, '&' or a quote.
_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])(%s)([ \t]*=[ \t]*)(?!\*\*\*(?:[\s&'\"]|$))[^\s&'\"]+" % _SECRET_KEY, re.I)
# "key": "value" and 'key': 'value' (JSON, Python reprs of dicts).
_QUOTED_PAIR = re.compile(r"""(["'])(%s)\1(\s*:\s*)(["'])(?:\\.|(?!\4).)*\4""" % _SECRET_KEY, re.I)
# Authorization: <scheme> <credentials> (a header written out); the scheme is kept.
_AUTH_HEADER = re.compile(
    r"(?<![A-Za-z0-9_-])((?:proxy-)?authorization[ \t]*:[ \t]*)(?:([A-Za-z]+)[ \t]+)?[^\s'\",]+", re.I
)
_BEARER = re.compile(r"(?<![A-Za-z0-9_-])(bearer[ \t]+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}", re.I)
# user:password@host without a scheme (a URL of this form is refused, but the refusal must not show it).
_BARE_USERINFO = re.compile(r"(?<![A-Za-z0-9_.%+/-])[A-Za-z0-9_.%+-]+:[^\s/@'\"]+@(?=[A-Za-z0-9\[])")


def _invalid_port(netloc):
    """True when ``netloc`` (no ``@`` in it) ends in ``:`` followed by something that is not a port.

    That is what ``user:pa/ss@host`` looks like once the ``/`` in the password has ended the authority."""
    if netloc.startswith("["):
        after = netloc.partition("]")[2]
        return bool(after) and not (after.startswith(":") and after[1:].isdigit())
    host, colon, port = netloc.rpartition(":")
    return bool(colon) and bool(port) and not port.isdigit()


def redact_url(url):
    """Drop user info, query string and fragment from ``url`` before it goes into a message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc and _invalid_port(netloc.partition("?")[0].partition("#")[0]):
        # A password with a raw '/', '?' or '#' cut the authority short: everything up to the last '@'
        # before the query is user info (hiding a little too much beats showing part of a password).
        head = re.split(r"[?#]", rest, maxsplit=1)[0]
        if "@" in head:
            rest = "x@" + rest[head.rindex("@") + 1 :]
            netloc, slash, path = rest.partition("/")
    if not slash:
        # No path: the query or fragment may follow the authority directly ("http://h?x=1").
        netloc, qmark, query = netloc.partition("?")
        netloc = netloc.partition("#")[0]
        path = "?" + query if qmark else ""
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    path, qmark, _query = path.partition("?")
    path = path.partition("#")[0]
    return "%s://%s%s%s%s" % (scheme, netloc, slash, path, "?" + MASK if qmark else "")


def redact_text(text):
    """``text`` with every URL in it passed through :func:`redact_url` and every secret-looking value hidden."""
    if not isinstance(text, str) or not text:
        return text
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _QUOTED_PAIR.sub(
        lambda m: "%s%s%s%s%s%s%s" % (m.group(1), m.group(2), m.group(1), m.group(3), m.group(4), MASK, m.group(4)),
        text,
    )
    text = _PAIR.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    if "@" in text:
        text = _BARE_USERINFO.sub(MASK + "@", text)
    return text


def redact_data(value, _depth=0):
    """A copy of ``value`` (dicts, lists, tuples, strings...) with :func:`redact_text` applied to every string,
    keys included. Other values are returned as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if _depth > 64:
        return value
    if isinstance(value, dict):
        return {redact_data(k, _depth + 1): redact_data(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v, _depth + 1) for v in value)
    return value


def redact_params(params, names):
    """Replace, in place, each of ``names`` in a module's ``params`` that holds a URL with its redacted form.

    Call it once the real values have been read: the ``invocation`` that Ansible adds to a result shows
    ``params`` as they are when the module exits."""
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            params[name] = redact_url(value) if "://" in value else redact_text(value)
    return params
