# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rollout plan's batches: ``serial`` cut exactly as ansible-core cuts a play's hosts.

As ``PlaybookExecutor._get_serialized_batches`` does with ``ansible.utils.helpers.pct_to_int``: a number,
a percentage of the play's host count (rounded down, at least 1), or a list whose last value repeats;
a value of 0 or less takes every remaining host at once.
"""

from collections.abc import Sequence

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

_SERIAL_HINT = "a number, a percentage such as '25%', or a list of them such as [1, '25%', '100%']"


# --------------------------------------------------------------------------- batches


def parse_serial(serial):
    """The ``serial`` value as the list ansible-core iterates over. Values it could not use are refused.

    ``[]`` means no serial (one batch of every host), as for a play without ``serial``. ``None`` is
    refused (ansible-core stops with an unexpected exception), and so are booleans, although
    ansible-core would take ``true`` for 1: they are always a mistake.
    """
    if serial is None:
        raise ValidationError("rollout_serial is null; give %s." % _SERIAL_HINT)
    items = list(serial) if isinstance(serial, Sequence) and not isinstance(serial, str) else [serial]
    items = [_plain(item) for item in items]
    for item in items:
        batch_size(item, 1)  # raises on anything ansible-core could not turn into a batch size
    return items


def _plain(item):
    """A plain ``str``/``int``/``float`` (templating engines hand over subclasses), other types as they are."""
    for kind in (bool, str, int, float):
        if isinstance(item, kind):
            return kind(item)
    return item


def batch_size(item, total):
    """One ``serial`` value as a host count, like ansible-core's ``pct_to_int(item, total)``.

    ``'30%'`` of 10 hosts is 3; a percentage that rounds down to 0 becomes 1. The float arithmetic is
    ansible-core's own, so its rounding quirks (``'29%'`` of 100 is 28) are reproduced, not fixed.
    """
    if isinstance(item, bool) or not isinstance(item, (int, float, str)):
        raise ValidationError("rollout_serial: %r is not %s." % (item, _SERIAL_HINT))
    try:
        if isinstance(item, str) and item.endswith("%"):
            pct = int(item.replace("%", ""))
            return int((pct / 100.0) * total) or 1
        return int(item)
    except (ValueError, OverflowError):
        hint = ""
        if isinstance(item, str) and item.strip().startswith("["):
            hint = ' Give a list as JSON, not as a string: -e \'{"rollout_serial": [1, "25%"]}\'.'
        raise ValidationError("rollout_serial: %r is not %s.%s" % (item, _SERIAL_HINT, hint)) from None


def serial_batches(hosts, serial):
    """Split ``hosts`` (the play's hosts, in order) into the batches ``serial`` gives."""
    items = parse_serial(serial) or [-1]
    remaining = list(hosts)
    total = len(remaining)
    batches = []
    index = 0
    while remaining:
        size = batch_size(items[index], total)
        if size <= 0:
            batches.append(remaining)
            break
        batches.append(remaining[:size])
        remaining = remaining[size:]
        index = min(index + 1, len(items) - 1)
    return batches
