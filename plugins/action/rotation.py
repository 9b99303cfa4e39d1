# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodowntime.rollout.rotation: in the controller's worker when the task runs on the controller, else the module."""

from ansible_collections.zerodowntime.rollout.plugins.modules.rotation import argument_spec, run_module
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._in_process import InProcessAction


class ActionModule(InProcessAction):
    MODULE = "zerodowntime.rollout.rotation"

    def module_spec(self):
        return {"argument_spec": argument_spec()}

    def run_local(self, params, check_mode, diff):
        return run_module(params, check_mode, diff)
