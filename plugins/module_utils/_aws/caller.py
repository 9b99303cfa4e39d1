# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Calling the AWS API: requests counted, throttling retried, pages and batches read, and how often a wait polls.

* :class:`AWSCaller` calls a boto3 client: it counts every request that reaches the client (retries of the
  throttling backoff included), asks amazon.aws's ``RetryingBotoClientWrapper`` to retry when the client is
  wrapped, and remembers what it was doing for error messages.
* The polling policy for waits on an AWS API: start at ``poll_interval``, grow by :data:`POLL_BACKOFF` with
  :data:`POLL_JITTER`, capped at :data:`POLL_MAX_INTERVAL`. A 300 s wait costs about 25 reads per load balancer
  (never the one-read-a-second of older modules, which AWS throttles).
* :func:`describe_each` reads refs in batches and names every missing one; :func:`dedupe` keeps the first of each.
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

POLL_INTERVAL = 2.0
POLL_BACKOFF = 1.5
POLL_MAX_INTERVAL = 15.0
POLL_JITTER = 0.1


class AWSCaller:
    """Calls operations on a boto3 client, counting requests.

    :param client: a boto3 client, or amazon.aws's ``RetryingBotoClientWrapper`` around one.
    :param aws_retry: pass ``aws_retry=True`` to every call (only for a wrapped client), so that
        throttling errors are retried with the wrapper's jittered backoff.
    """

    def __init__(self, client, aws_retry=False):
        self.client = client
        self.aws_retry = aws_retry
        self.api_calls = 0
        self.action = None
        self._hooked = False
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:
            # Counted where botocore starts a request, so that each retry of the backoff counts too.
            events.register_first("before-call.*.*", self._count)
            self._hooked = True

    def _count(self, **_kwargs):
        self.api_calls += 1

    def call(self, operation, action, **params):
        """Call ``client.<operation>(**params)``; ``action`` describes it for error messages."""
        self.action = action
        if self.aws_retry:
            params["aws_retry"] = True
        if not self._hooked:
            self._count()
        return getattr(self.client, operation)(**params)

    def pages(self, operation, action, key, **params):
        """The items under ``key`` of every page of ``operation`` (the ``Marker``/``NextMarker`` paging of ELB)."""
        items = []
        marker = None
        while True:
            if marker:
                params["Marker"] = marker
            page = self.call(operation, action, **params)
            items.extend(page.get(key) or [])
            marker = page.get("NextMarker")
            if not marker:
                return items


def validate_wait(timeout, poll_interval, allow_none_timeout=True):
    """Refuse a timeout of 0 or less (use ``wait=false`` not to wait) and a poll interval of 0 or less."""
    if timeout is None:
        if not allow_none_timeout:
            raise ValidationError("timeout is required.")
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValidationError(
            "timeout must be more than 0 seconds, got %r. To not wait at all, set wait=false instead." % (timeout,)
        )
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise ValidationError("poll_interval must be more than 0 seconds, got %r." % (poll_interval,))


def dedupe(items, key=None):
    """Items in order, each once (the first of those with the same ``key(item)``, when ``key`` is given)."""
    seen = set()
    out = []
    for item in items:
        marker = item if key is None else key(item)
        if marker not in seen:
            seen.add(marker)
            out.append(item)
    return out


def chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def describe_each(describe, refs, batch_size, not_found_codes):
    """``describe(batch)`` for ``refs`` in batches of ``batch_size``: ``(every item found, every ref missing)``.

    A batch that fails with one of ``not_found_codes`` is asked again one ref at a time, so that every
    missing ref is named, not only the first one AWS complains about.
    """
    items = []
    missing = []
    for batch in chunks(refs, batch_size):
        try:
            items.extend(describe(batch))
        except is_boto3_error_code(not_found_codes):
            # One unknown ref fails the whole batch: ask one by one to name every missing one.
            for ref in batch:
                try:
                    items.extend(describe([ref]))
                except is_boto3_error_code(not_found_codes):
                    missing.append(ref)
    return items, missing
