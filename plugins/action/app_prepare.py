# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodowntime.rollout.app_prepare: the module, plus the controller's side of ``artifact_from=controller``.

With the archive on the host (``artifact_from=host``, or ``auto`` with anything but ``s3://``), the module runs
once, as it always did. With the archive on the controller, plugins/plugin_utils/_controller_artifact.py reads the
host first, then fetches, verifies and copies the archive only to a host that will unpack it, and runs the module
again on the copy. That code is imported only for such a task: every task's worker imports this plugin afresh.
"""

from ansible.plugins.action import ActionBase

MODULE = "zerodowntime.rollout.app_prepare"


def _controller_provides(src, artifact_from):
    """The controller provides the archive: artifact_from=controller, or an s3:// URL with auto."""
    return artifact_from == "controller" or (isinstance(src, str) and src[:5].lower() == "s3://")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # the remote temporary directory is made only when a copy is needed
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if _controller_provides(args.get("src"), args.get("artifact_from") or "auto"):
            from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._controller_artifact import (
                run_from_controller,
            )

            result.update(run_from_controller(self, args, task_vars))
            return result
        try:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
