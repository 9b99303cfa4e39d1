# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""Run a blocking controller-side call (a file transfer through the connection) under a deadline."""

import threading

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import ArtifactSourceError


def run_with_deadline(func, seconds, what):
    """Call ``func()`` in a worker thread and wait for it at most ``seconds``.

    Returns what it returns and raises what it raises. When the deadline passes first, raises
    ArtifactSourceError; the worker is left to end on its own (a daemon thread), and the caller removes whatever
    it was writing to."""
    box = {}
    done = threading.Event()

    def work():
        try:
            box["value"] = func()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name="zerodowntime-rollout-copy", daemon=True)
    worker.start()
    if not done.wait(seconds):
        raise ArtifactSourceError(
            "copying %s to the host did not finish within %g s (download_timeout). The partial copy is removed; "
            "nothing was unpacked. Check the link to the host, or raise rolling_update_artifact_timeout."
            % (what, seconds),
            timeout=seconds,
        )
    if "error" in box:
        raise box["error"]
    return box.get("value")
