# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report's files: the JSON text, and writing a file whole or not at all."""

import contextlib
import json
import os
import tempfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_data

REPORT_MODE = 0o644


def to_json(report):
    """The report as JSON text (redacted again, whatever the dict holds)."""
    return json.dumps(redact_data(report), indent=2, sort_keys=False) + "\n"


def write_atomic(path, text, mode=REPORT_MODE):
    """Write ``text`` to ``path`` whole or not at all, with ``mode`` whatever the umask.

    The temporary file is a new one made by ``mkstemp`` next to ``path`` (``O_EXCL``, so nothing planted in
    the directory, a symlink least of all, is opened or followed), then renamed over ``path``; a symlink at
    ``path`` is replaced, not followed. On any failure the temporary file is removed."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
