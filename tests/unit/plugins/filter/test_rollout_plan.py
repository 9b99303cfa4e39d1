import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.zerodowntime.rollout.plugins.filter.rollout_plan import FilterModule, rollout_plan


def test_registered_under_its_name():
    assert FilterModule().filters()["rollout_plan"] is rollout_plan


def test_batches_without_records():
    plan = rollout_plan(["a", "b", "c", "d"], [1, "50%"])
    assert [[h["host"] for h in b["hosts"]] for b in plan["batches"]] == [["a"], ["b", "c"], ["d"]]


@pytest.mark.parametrize("serial", ["abc", None, "12.5%"])
def test_bad_serial_is_a_filter_error(serial):
    with pytest.raises(AnsibleFilterError, match="rollout_serial"):
        rollout_plan(["a"], serial)
