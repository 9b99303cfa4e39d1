# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Keep secrets out of messages: every URL that reaches a message, a result or the report goes through here.

``redact_url`` replaces a URL's user info with ``***`` and its whole query string with ``***`` (a query
often carries tokens or signatures; which of its values are secret is not knowable in general), and drops
the fragment. ``redact_text`` does the same to every URL found inside a free-text message.
"""

import re

# A URL inside free text: a scheme, then anything up to whitespace or a quote/bracket that ends it.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>()\[\]{}]+""")


def redact_url(url):
    """Drop user info, query string and fragment from ``url`` before it goes into a message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if not slash:
        # No path: the query or fragment may follow the authority directly ("http://h?x=1").
        netloc, qmark, query = netloc.partition("?")
        netloc = netloc.partition("#")[0]
        path = "?" + query if qmark else ""
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path, qmark, _query = path.partition("?")
    path = path.partition("#")[0]
    return "%s://%s%s%s%s" % (scheme, netloc, slash, path, "?***" if qmark else "")


def redact_text(text):
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
