# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS capacity rows and the batch verdict shared by the rotation module's drain and the plan."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.capacity import (
    back_in_rotation,
    classic_rows,
    elbv2_rows,
    evaluate_targets,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError


def test_rows_count_healthy_registrations_and_in_service_instances():
    members = [
        {"id": "i-1", "port": 80, "state": "healthy"},
        {"id": "i-1", "port": 81, "state": "initial"},
        {"id": "10.0.0.7", "port": 80, "state": "draining"},
    ]
    assert elbv2_rows([("web", members)]) == [
        {"where": "target group web", "servers": {"i-1:80": True, "i-1:81": False, "10.0.0.7:80": False}}
    ]
    assert classic_rows([("elb", [{"id": "i-1", "state": "InService"}, {"id": "i-2", "state": "OutOfService"}])]) == [
        {"where": "Classic ELB elb", "servers": {"i-1": True, "i-2": False}}
    ]


def test_every_port_of_a_batch_target_counts_as_drained():
    rows = elbv2_rows([("web", [{"id": t, "port": p, "state": "healthy"} for t in ("i-1", "i-2") for p in (80, 81)])])
    verdict = evaluate_targets(rows, ["i-1", ""], 3)
    assert verdict["ok"] is False and verdict["lbs"][0]["remaining"] == 2
    assert verdict["msg"].startswith("Capacity guard: draining i-1 would leave too few")
    assert evaluate_targets(rows, ["i-1"], "50%")["ok"] is True
    with pytest.raises(ValidationError):
        evaluate_targets(rows, ["i-1"], "lots")


def test_back_in_rotation_copies():
    rows = classic_rows([("elb", [{"id": "i-1", "state": "OutOfService"}, {"id": "i-2", "state": "OutOfService"}])])
    back = back_in_rotation(rows, ["i-1"])
    assert back[0]["servers"] == {"i-1": True, "i-2": False}
    assert rows[0]["servers"] == {"i-1": False, "i-2": False}
