# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodowntime.rollout.rotation: in the controller's worker when the task runs on the controller, else the module.

Only the HAProxy provider runs in the worker. The AWS providers (and any call that carries amazon.aws's connection
options) always run as the module: the task's ``environment`` and the host's AWS configuration then reach boto3
exactly as for any AWS module, and the worker does not import boto3 (about half a second per task) for them."""

from ansible_collections.zerodowntime.rollout.plugins.modules.rotation import module_spec, plain_haproxy, run_module
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "zerodowntime.rollout.rotation"

    def module_spec(self):
        return module_spec()

    def _in_process(self):
        return super()._in_process() and plain_haproxy(dict(self._task.args))

    def run_local(self, params, check_mode, diff):
        return run_module(params, check_mode, diff)
