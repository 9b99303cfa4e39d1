# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Pieces shared by the AWS load balancer helpers (_elbv2, _elb_classic).

* :class:`AWSCaller` calls a boto3 client: it counts every request that reaches the client
  (retries of the throttling backoff included), asks amazon.aws's ``RetryingBotoClientWrapper``
  to retry when the client is wrapped, and remembers what it was doing for error messages.
* The polling policy for waits on an AWS API: start at ``poll_interval``, grow by
  :data:`POLL_BACKOFF` with :data:`POLL_JITTER`, capped at :data:`POLL_MAX_INTERVAL`. A 300 s
  wait costs about 25 reads per load balancer (never the one-read-a-second of older modules,
  which AWS throttles).
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

POLL_INTERVAL = 2.0
POLL_BACKOFF = 1.5
POLL_MAX_INTERVAL = 15.0
POLL_JITTER = 0.1

# Margin added to the load balancer's own drain time (deregistration delay, connection draining)
# when computing or extending a deregistration wait.
DRAIN_MARGIN = 60


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
        self.calls_by_operation = {}
        self.action = None
        self._hooked = False
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:
            # Counted where botocore starts a request, so that each retry of the backoff counts too.
            events.register_first("before-call.*.*", self._count)
            self._hooked = True

    def _count(self, model=None, **_kwargs):
        self.api_calls += 1
        name = getattr(model, "name", None) or "unknown"
        self.calls_by_operation[name] = self.calls_by_operation.get(name, 0) + 1

    def call(self, operation, action, **params):
        """Call ``client.<operation>(**params)``; ``action`` describes it for error messages."""
        self.action = action
        if self.aws_retry:
            params["aws_retry"] = True
        if not self._hooked:
            self._count()
        return getattr(self.client, operation)(**params)

    def calls(self, operation):
        """Requests made so far for one operation (its API name, e.g. ``DescribeTargetHealth``)."""
        return self.calls_by_operation.get(operation, 0)


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


def dedupe(items):
    """Items in order, each once."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]
