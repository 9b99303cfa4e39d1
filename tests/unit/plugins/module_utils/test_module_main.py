# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_module: the shared end of the modules' main()."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module


class Exit(Exception):
    pass


class RecordingModule:
    """Records how the module ended, as AnsibleModule would end it (exit_json and fail_json do not return)."""

    def __init__(self, params):
        self.params = params
        self.ended = None

    def exit_json(self, **result):
        self.ended = ("exit", result)
        raise Exit()

    def fail_json(self, **result):
        self.ended = ("fail", result)
        raise Exit()


def test_work_sees_real_values_and_the_invocation_sees_redacted_ones():
    module = RecordingModule({"url": "https://user:s3cret@example.test/x", "n": 1})
    seen = {}

    def work(params):
        seen.update(params)
        return {"changed": True}

    with pytest.raises(Exit):
        run_module(module, work, secret_params=["url"])
    assert seen["url"] == "https://user:s3cret@example.test/x"
    assert "s3cret" not in module.params["url"]
    assert module.ended == ("exit", {"changed": True})


def test_a_rollout_error_fails_with_its_redacted_message_and_details():
    module = RecordingModule({})

    def work(params):
        raise ValidationError("refused https://user:s3cret@example.test/x", server="app1")

    with pytest.raises(Exit):
        run_module(module, work)
    kind, result = module.ended
    assert kind == "fail"
    assert "s3cret" not in result["msg"] and result["msg"].startswith("refused https://")
    assert result["server"] == "app1"
