# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The end of every module's ``main()``: run the work, then exit with its result or fail with the error's.

A module builds its ``AnsibleModule`` (docs and argument spec are its own), then hands it here with the
function that does the work. The function gets a copy of the parameters taken before any of them is
redacted, so it sees the real values; the ``invocation`` Ansible adds to the result shows the redacted ones.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_params, redact_text


def run_module(module, work, secret_params=()):
    """Call ``work(params)`` and end ``module`` with what it returns.

    ``secret_params`` names the parameters that may hold credentials (URLs, command lines): they are
    redacted in ``module.params`` before ``work`` runs. A :class:`RolloutError` becomes ``fail_json`` with
    its redacted message and its details.
    """
    params = dict(module.params)
    redact_params(module.params, secret_params)
    try:
        result = work(params)
    except RolloutError as exc:
        module.fail_json(msg=redact_text(exc.msg), **exc.details)
    module.exit_json(**result)
