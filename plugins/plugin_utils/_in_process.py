# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""Run a module's logic inside the controller's worker when the task runs on the controller itself.

The load balancer and lock work of a rollout often targets the controller: an HAProxy admin socket
reachable over TCP, or a lock kept on ``localhost``. Shipping the module there through AnsiballZ and a
new Python costs a few hundred milliseconds per call for nothing. When the task's connection is
``local`` and it asks for no privilege escalation, the action validates the arguments with the
module's own argument spec and calls the same plain-Python function the module's ``main()`` calls;
anywhere else it runs the module as usual. The results are the same either way.
"""

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError


class InProcessAction(ActionBase):
    """Subclasses set ``MODULE`` (its FQCN) and ``MODULE_SPEC`` (argument_spec kwargs) and implement ``run_local``."""

    MODULE = None
    TRANSFERS_FILES = False

    def module_spec(self):
        raise NotImplementedError

    def run_local(self, params, check_mode, diff):
        raise NotImplementedError

    def _in_process(self):
        return getattr(self._connection, "transport", None) == "local" and not self._play_context.become

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self._in_process():
            result.update(
                self._execute_module(module_name=self.MODULE, module_args=self._task.args, task_vars=task_vars)
            )
            return result
        spec = self.module_spec()
        validated = ArgumentSpecValidator(**spec).validate(dict(self._task.args))
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        try:
            out = self.run_local(
                validated.validated_parameters, bool(self._play_context.check_mode), bool(self._play_context.diff)
            )
        except RolloutError as exc:
            out = dict(exc.details, failed=True, msg=exc.msg)
        result.update(out)
        return result
