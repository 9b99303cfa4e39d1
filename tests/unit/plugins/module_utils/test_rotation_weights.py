# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weighted canary in HAProxyRotation: the weights record is written before the first 'set weight', the weights go
back on 'unweighted', and an interrupted run's weights go back on the next run's drain (the resume path)."""

import json
import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.client import HAProxyRuntime
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import RecordError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.haproxy import (
    HAProxyRotation,
    run_rotation,
)
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import (
    FakeClock,
    RecordingHAProxy,
    make_server,
)

A = "/run/haproxy/a.sock"
B = "tcp://10.0.0.11:9999"
NOW = 1700000000.0
SERVERS = ("app1", "app2", "app3", "app4")


def fleet(**overrides):
    servers = {}
    for name in SERVERS:
        servers[("app", name)] = make_server(**overrides.get(name, {}))
    return RecordingHAProxy(servers)


class Rig:
    def __init__(self, tmp_path, a=None, b=None):
        self.fakes = {A: a or fleet(), B: b or fleet()}
        self.clock = FakeClock(fakes=self.fakes.values())
        self.state_dir = str(tmp_path / "state")
        self.timing = {"clock": self.clock, "sleep": self.clock.sleep, "now": lambda: NOW}
        self.member = self.make("app1")
        self.weights_path = self.member.records.path(self.member.weights_key)
        for fake in self.fakes.values():
            fake.record_path = self.weights_path

    def make(self, server):
        return HAProxyRotation([A, B], "app", server, self.state_dir, connect=self.connect, **self.timing)

    def connect(self, address):
        return HAProxyRuntime(address, transport=self.fakes[address])

    def weights(self, address):
        return {name: self.fakes[address].servers[("app", name)]["uweight"] for name in SERVERS}

    def changes(self):
        return {address: fake.changes() for address, fake in self.fakes.items()}


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


ORIGINAL = {"app1": 1, "app2": 1, "app3": 1, "app4": 1}
WEIGHTED = {"app1": 1, "app2": 3, "app3": 3, "app4": 3}


def test_weighted_writes_the_record_before_the_first_set_weight_then_gives_the_share(rig):
    result = rig.member.set_canary_weights(batch=["app1"], share=10, run_id="r1", version="v2")
    assert result["changed"] is True and result["record_written"] is True
    assert result["achieved"] == 10.0
    for address in (A, B):
        assert rig.weights(address) == WEIGHTED
        seen = rig.fakes[address].record_seen
        assert seen and all(existed for _command, existed in seen), seen
        assert sorted(c for c, _e in seen) == ["set server app/app%d weight 3" % i for i in (2, 3, 4)]
    with open(rig.weights_path) as handle:
        record = json.load(handle)
    assert record["weights"] == {A: ORIGINAL, B: ORIGINAL}
    assert record["canary"] == ["app1"] and record["share"] == 10.0 and record["run_id"] == "r1"
    assert oct(os.stat(rig.weights_path).st_mode & 0o777) == "0o600"
    assert "Gave app1 10% of backend app's traffic" in result["msg"] and "x3" in result["msg"]


def test_weighted_twice_keeps_the_original_weights_in_the_record(rig):
    rig.member.set_canary_weights(batch=["app1"], share=10)
    again = rig.member.set_canary_weights(batch=["app1"], share=10)
    assert again["changed"] is False and again["record_written"] is False
    with open(rig.weights_path) as handle:
        assert json.load(handle)["weights"] == {A: ORIGINAL, B: ORIGINAL}


def test_unweighted_puts_every_weight_back_and_removes_the_record(rig):
    rig.member.set_canary_weights(batch=["app1"], share=10)
    result = rig.member.restore_weights()
    assert result["changed"] is True and result["restored"] is True
    assert rig.weights(A) == ORIGINAL and rig.weights(B) == ORIGINAL
    assert not os.path.exists(rig.weights_path)
    again = rig.member.restore_weights()
    assert again["changed"] is False and "no weights record" in again["msg"]


def test_unweighted_without_a_record_reads_nothing(rig):
    result = rig.member.restore_weights()
    assert result["changed"] is False
    assert all(fake.log == [] for fake in rig.fakes.values())


def test_original_weights_other_than_one_come_back_exactly(tmp_path):
    rig = Rig(tmp_path, a=fleet(app2={"weight": 7}, app4={"weight": 2}), b=fleet(app3={"weight": 50}))
    before = {A: rig.weights(A), B: rig.weights(B)}
    rig.member.set_canary_weights(batch=["app1"], share=10)
    assert rig.weights(A) != before[A] and rig.weights(B) != before[B]
    rig.member.restore_weights()
    assert {A: rig.weights(A), B: rig.weights(B)} == before


def test_an_interrupted_run_is_restored_by_the_next_runs_drain(tmp_path):
    # Run 1 weighted the canary and was killed: the record and the changed weights stay behind.
    first = Rig(tmp_path)
    first.member.set_canary_weights(batch=["app1"], share=10)
    assert first.weights(A) == WEIGHTED
    # Run 2 (a new process: fresh objects over the same HAProxy and state dir) drains app2 first.
    second = HAProxyRotation([A, B], "app", "app2", first.state_dir, connect=first.connect, **first.timing)
    read = second.read()
    assert read["weights_record"]["weights"] == {A: ORIGINAL, B: ORIGINAL}
    result = second.take_out(batch=["app2"])
    assert result["weights_restored"] is True
    assert first.weights(A) == ORIGINAL and first.weights(B) == ORIGINAL
    assert not os.path.exists(first.weights_path)
    # The weights went back before the drain command.
    log = first.fakes[A].changes()
    assert log.index("set server app/app2 state drain") > max(i for i, c in enumerate(log) if c.endswith("weight 1"))


def test_an_interrupted_run_is_the_base_of_the_next_weighting(rig):
    rig.member.set_canary_weights(batch=["app1"], share=10)
    # The next run weights again without a drain in between: the plan starts from the recorded originals, not from
    # the scaled weights (which would scale them again, to 9).
    again = rig.make("app1").set_canary_weights(batch=["app1"], share=10)
    assert again["changed"] is False and rig.weights(A) == WEIGHTED


def test_check_mode_sends_no_weight_and_writes_no_record(rig):
    result = rig.member.set_canary_weights(batch=["app1"], share=10, check_mode=True, diff=True)
    assert result["changed"] is True and result["record_written"] is False
    assert result["diff"]["after"][A] == WEIGHTED
    assert rig.changes() == {A: [], B: []} and not os.path.exists(rig.weights_path)
    rig.member.set_canary_weights(batch=["app1"], share=10)
    restored = rig.member.restore_weights(check_mode=True)
    assert restored["changed"] is True and os.path.exists(rig.weights_path) and rig.weights(A) == WEIGHTED


def test_an_impossible_share_changes_nothing(tmp_path):
    big = {"weight": 256}
    rig = Rig(tmp_path, a=fleet(app2=big, app3=big, app4=big), b=fleet(app2=big, app3=big, app4=big))
    with pytest.raises(ValidationError, match="HAProxy at /run/haproxy/a.sock: Cannot give .*No weight was changed"):
        rig.member.set_canary_weights(batch=["app1"], share=90)
    assert rig.changes() == {A: [], B: []} and not os.path.exists(rig.weights_path)


def test_a_failed_set_weight_keeps_the_record_for_the_restore(tmp_path):
    rig = Rig(tmp_path, b=RecordingHAProxy({("app", n): make_server() for n in SERVERS}, set_error="Busy"))
    with pytest.raises(LBCommandError, match="Setting the weights of backend app failed") as info:
        rig.member.set_canary_weights(batch=["app1"], share=10)
    assert info.value.details["changed"] is True
    assert rig.weights(A) == WEIGHTED and os.path.exists(rig.weights_path)
    rig.fakes[B].set_error = None
    rig.member.restore_weights()
    assert rig.weights(A) == ORIGINAL and not os.path.exists(rig.weights_path)


def test_a_corrupt_weights_record_is_reported_not_trusted(rig):
    os.makedirs(os.path.dirname(rig.weights_path), mode=0o700)
    with open(rig.weights_path, "w") as handle:
        handle.write("{not json")
    with pytest.raises(RecordError, match="not a readable weights record"):
        rig.member.restore_weights()
    assert rig.changes() == {A: [], B: []}


def test_run_rotation_weighted_then_unweighted(rig):
    params = {"sockets": [A, B], "backend": "app", "server": "app1", "state_dir": rig.state_dir, "share": 10.0}
    result = run_rotation("haproxy", "weighted", params, connect=rig.connect)
    assert result["achieved"] == 10.0 and rig.weights(A) == WEIGHTED
    result = run_rotation("haproxy", "unweighted", params, connect=rig.connect)
    assert result["restored"] is True and rig.weights(A) == ORIGINAL


def test_put_back_with_a_share_weights_the_canary_before_it_goes_back_in_rotation(rig):
    # app1 is out of rotation (drained by the transaction), as a canary is before its enable.
    rig.member.take_out(batch=["app1"])
    assert rig.weights(A) == ORIGINAL
    result = rig.member.put_back(share=10, batch=["app1"], version="v2")
    assert result["changed"] is True and result["achieved"] == 10.0
    assert rig.weights(A) == WEIGHTED and rig.weights(B) == WEIGHTED
    for address in (A, B):
        log = rig.fakes[address].changes()
        ready = log.index("set server app/app1 state ready")
        # Every 'set weight' went out before the server was set ready: it never took a round-robin share.
        assert ready > max(i for i, c in enumerate(log) if " weight " in c), log
    assert [e["socket"] for e in result["weights"]] == [A, B]
    assert result["steps"][0]["name"] == "enable" and len(result["steps"]) == 1
    assert result["msg"].startswith("Gave app1 10% of backend app's traffic")
    assert os.path.exists(rig.weights_path)  # the canary's analysis ends with 'unweighted' (or a drain) later


def test_put_back_with_a_share_for_a_batch_of_two_gives_both_the_same_weight_and_the_second_call_changes_none(rig):
    rig.member.take_out(batch=["app1", "app2"])
    first = rig.member.put_back(share=20, batch=["app1", "app2"])
    weights = rig.weights(A)
    assert weights["app1"] == weights["app2"] and weights["app3"] == weights["app4"] > weights["app1"]
    second = rig.make("app2").put_back(share=20, batch=["app1", "app2"])
    assert rig.weights(A) == weights
    assert first["achieved"] == second["achieved"] and "Already gave" in second["msg"]


def test_put_back_with_a_share_in_check_mode_changes_nothing(rig):
    rig.member.take_out(batch=["app1"])
    before = rig.changes()
    result = rig.member.put_back(share=10, batch=["app1"], check_mode=True)
    assert result["changed"] is True and rig.changes() == before
    assert rig.weights(A) == ORIGINAL and not os.path.exists(rig.weights_path)


def test_put_back_without_a_share_leaves_the_weights_alone(rig):
    rig.member.take_out(batch=["app1"])
    result = rig.member.put_back()
    assert "achieved" not in result and "weights" not in result
    assert not any(" weight " in c for c in rig.fakes[A].changes())


def test_put_back_with_a_share_in_diff_mode_shows_the_weights_then_the_state(rig):
    rig.member.take_out(batch=["app1"])
    result = rig.member.put_back(share=10, batch=["app1"], diff=True)
    assert isinstance(result["diff"], list) and len(result["diff"]) == 2
    assert result["diff"][0]["before"][A] == ORIGINAL and result["diff"][0]["after"][A] == WEIGHTED
