import json
import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock import LockHeldError, acquire, release


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def lock(tmp_path):
    return str(tmp_path / "app.lock")


def held(path):
    with open(path) as f:
        return json.load(f)


def test_free_lock_is_taken(lock):
    r = acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    assert r["changed"] and r["acquired"] and held(lock)["owner"] == "alice@ctl" and held(lock)["run_id"] == "run1"


def test_same_run_is_idempotent(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    r = acquire(lock, "alice@ctl", "run1", 60, clock=Clock(1010))
    assert r["changed"] is False and held(lock)["started"] == 1000


def test_other_owner_is_refused_with_the_holders_identity(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    with pytest.raises(LockHeldError) as e:
        acquire(lock, "bob@ctl", "run2", 60, clock=Clock(1030))
    assert "alice@ctl" in e.value.msg and "run1" in e.value.msg and "30 s ago" in e.value.msg
    assert held(lock)["owner"] == "alice@ctl"


def test_same_owner_takes_over_for_resume(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030))
    assert r["taken_over"] == "same owner" and held(lock)["run_id"] == "run2"


def test_expired_lock_is_taken_over_and_reported(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    r = acquire(lock, "bob@ctl", "run2", 60, clock=Clock(1061))
    assert r["taken_over"] == "expired" and r["previous"]["owner"] == "alice@ctl" and held(lock)["owner"] == "bob@ctl"


def test_force_breaks_glass(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    r = acquire(lock, "bob@ctl", "run2", 60, force=True, clock=Clock(1001))
    assert r["taken_over"] == "forced" and held(lock)["owner"] == "bob@ctl"


def test_check_mode_changes_nothing(lock):
    r = acquire(lock, "alice@ctl", "run1", 60, check_mode=True, clock=Clock())
    assert r["changed"] and not os.path.exists(lock)
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    release(lock, "alice@ctl", "run1", check_mode=True)
    assert os.path.exists(lock)


def test_unreadable_lock_is_not_taken_silently(lock):
    with open(lock, "w") as f:
        f.write("{half")
    with pytest.raises(LockHeldError, match="unreadable lock file"):
        acquire(lock, "bob@ctl", "run2", 60, clock=Clock())


def test_release_only_our_own(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    with pytest.raises(LockHeldError, match="belongs to alice@ctl"):
        release(lock, "bob@ctl", "run2")
    assert os.path.exists(lock)
    with pytest.raises(LockHeldError):
        release(lock, "alice@ctl", "other-run")
    assert release(lock, "alice@ctl", "run1")["released"] and not os.path.exists(lock)
    assert release(lock, "alice@ctl", "run1")["changed"] is False


@pytest.mark.parametrize(
    "path,owner,ttl", [("relative.lock", "a", 60), (None, "a", 60), ("/tmp/x.lock", "", 60), ("/tmp/x.lock", "a", 0)]
)
def test_bad_input(path, owner, ttl):
    with pytest.raises(ValidationError):
        acquire(path, owner, "r", ttl)


def test_missing_folder(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        acquire(str(tmp_path / "nope" / "a.lock"), "a", "r", 60)


# -- same owner, different run: taken over only when the holder's run is gone (``run``) -----------


def run_of(pid, started="500", controller="ctl", running=None):
    """A controller_run lookup result; ``running`` defaults to this run alone."""
    if running is None:
        running = [{"pid": pid, "started": started}]
    return {"controller": controller, "pid": pid, "started": started, "running": running}


def raw(path):
    with open(path, "rb") as f:
        return f.read()


def test_run_is_recorded_in_the_lock(lock):
    r = acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    record = held(lock)
    assert (
        record["controller"] == "ctl" and record["controller_pid"] == 101 and record["controller_pid_started"] == "500"
    )
    assert record["started"] == 1000 and r["lock"] == record


def test_same_owner_in_a_run_still_alive_is_refused_and_the_lock_is_untouched(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    before = raw(lock)
    alive = [{"pid": 101, "started": "500"}, {"pid": 202, "started": "900"}]
    with pytest.raises(LockHeldError) as e:
        acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900", running=alive))
    msg = e.value.msg
    assert "held by the same owner in a run that is still running on this controller" in msg
    assert "alice@ctl (run run1, started 1970-01-01T00:16:40Z, 30 s ago" in msg and "pid 101" in msg
    assert "rollout_lock_owner" in msg and "force" in msg
    assert e.value.details["holder"]["controller_pid"] == 101
    assert raw(lock) == before


def test_same_owner_in_a_run_still_alive_is_refused_in_check_mode_too(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    before = raw(lock)
    alive = [{"pid": 101, "started": "500"}, {"pid": 202, "started": "900"}]
    with pytest.raises(LockHeldError, match="still running"):
        acquire(
            lock, "alice@ctl", "run2", 60, check_mode=True, clock=Clock(1030), run=run_of(202, "900", running=alive)
        )
    assert raw(lock) == before


def test_same_owner_whose_run_is_gone_is_taken_over(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900"))
    assert r["changed"] and r["taken_over"] == "same owner, its run is gone"
    assert r["previous"]["run_id"] == "run1" and "same owner, its run is gone" in r["msg"]
    assert held(lock)["run_id"] == "run2" and held(lock)["controller_pid"] == 202


def test_same_owner_whose_run_is_gone_in_check_mode_changes_nothing(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    before = raw(lock)
    r = acquire(lock, "alice@ctl", "run2", 60, check_mode=True, clock=Clock(1030), run=run_of(202, "900"))
    assert r["changed"] and r["taken_over"] == "same owner, its run is gone" and r["lock"]["run_id"] == "run2"
    assert raw(lock) == before


def test_a_reused_pid_with_another_start_time_is_a_dead_run(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    # pid 101 now belongs to another ansible-playbook process, started later
    reused = [{"pid": 101, "started": "777"}, {"pid": 202, "started": "900"}]
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900", running=reused))
    assert r["taken_over"] == "same owner, its run is gone" and held(lock)["run_id"] == "run2"


def test_same_owner_from_another_controller_is_taken_over_as_before(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500", controller="ctl-a"))
    # pid 101 with that start time also runs here, on ctl-b: a coincidence, it says nothing about ctl-a
    here = [{"pid": 101, "started": "500"}, {"pid": 202, "started": "900"}]
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900", "ctl-b", running=here))
    assert r["taken_over"] == "same owner" and held(lock)["controller"] == "ctl-b"


def test_same_owner_without_liveness_information_is_taken_over_as_before(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, None))
    no_proc = {"controller": "ctl", "pid": 202, "started": None, "running": None}
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=no_proc)
    assert r["taken_over"] == "same owner" and held(lock)["run_id"] == "run2"


def test_same_owner_without_run_is_taken_over_as_before(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030))
    assert r["taken_over"] == "same owner" and "controller" not in held(lock)


def test_old_lock_record_without_the_run_keys_is_taken_over_as_before(lock):
    with open(lock, "w") as f:
        json.dump({"owner": "alice@ctl", "run_id": "run1", "started": 1000, "ttl": 60}, f)
    alive = [{"pid": 101, "started": "500"}, {"pid": 202, "started": "900"}]
    r = acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900", running=alive))
    assert r["taken_over"] == "same owner" and held(lock)["controller_pid"] == 202


def test_the_same_run_again_is_idempotent_with_run(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    before = raw(lock)
    r = acquire(lock, "alice@ctl", "run1", 60, clock=Clock(1010), run=run_of(101, "500"))
    assert r["changed"] is False and raw(lock) == before


def test_an_alive_same_owner_run_yields_to_the_ttl_and_to_force(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    alive = [{"pid": 101, "started": "500"}, {"pid": 202, "started": "900"}]
    r = acquire(lock, "alice@ctl", "run2", 60, force=True, clock=Clock(1030), run=run_of(202, "900", running=alive))
    assert r["taken_over"] == "forced" and held(lock)["run_id"] == "run2"
    alive = [{"pid": 202, "started": "900"}, {"pid": 303, "started": "950"}]
    r = acquire(lock, "alice@ctl", "run3", 60, clock=Clock(1091), run=run_of(303, "950", running=alive))
    assert r["taken_over"] == "expired" and held(lock)["run_id"] == "run3"


def test_another_owner_is_still_refused_with_run(lock):
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    with pytest.raises(LockHeldError, match="Another rollout holds the lock"):
        acquire(lock, "bob@ctl", "run2", 60, clock=Clock(1030), run=run_of(202, "900"))


GOOD_RUN = {"controller": "ctl", "pid": 1, "started": "5", "running": [{"pid": 1, "started": "5"}]}


@pytest.mark.parametrize(
    "run, match",
    [
        ("ctl:1", r"\(a dict\), got str"),
        ([GOOD_RUN], r"\(a dict\), got list"),
        ({"controller": "ctl", "pid": 1, "started": "5"}, "missing: running, unknown: none"),
        (dict(GOOD_RUN, extra=1), "missing: none, unknown: extra"),
        (dict(GOOD_RUN, controller=""), "run.controller must be a non-empty string"),
        (dict(GOOD_RUN, controller=7), "run.controller must be a non-empty string"),
        (dict(GOOD_RUN, pid="1"), "run.pid must be a positive integer"),
        (dict(GOOD_RUN, pid=True), "run.pid must be a positive integer"),
        (dict(GOOD_RUN, pid=0), "run.pid must be a positive integer"),
        (dict(GOOD_RUN, pid=1.0), "run.pid must be a positive integer"),
        (dict(GOOD_RUN, started=5), "run.started must be a string or null"),
        (dict(GOOD_RUN, running={"pid": 1, "started": "5"}), "run.running must be a list or null"),
        (dict(GOOD_RUN, running=[1]), "every item of run.running"),
        (dict(GOOD_RUN, running=[{"pid": "1", "started": "5"}]), "every item of run.running"),
        (dict(GOOD_RUN, running=[{"pid": False, "started": "5"}]), "every item of run.running"),
        (dict(GOOD_RUN, running=[{"pid": 1, "started": 5}]), "every item of run.running"),
        (dict(GOOD_RUN, running=[{"pid": 1}]), "every item of run.running"),
        (dict(GOOD_RUN, running=[{"pid": 1, "started": "5", "x": 1}]), "every item of run.running"),
    ],
)
def test_bad_run_is_refused_before_anything_is_written(lock, run, match):
    with pytest.raises(ValidationError, match=match) as e:
        acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run)
    assert "zerodowntime.rollout.controller_run" in e.value.msg
    assert not os.path.exists(lock)
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock(), run=run_of(101, "500"))
    before = raw(lock)
    with pytest.raises(ValidationError, match=match):
        acquire(lock, "alice@ctl", "run2", 60, clock=Clock(1030), run=run)
    assert raw(lock) == before


def test_bad_run_is_refused_even_in_check_mode_and_before_the_folder_check(tmp_path):
    with pytest.raises(ValidationError, match="run.pid"):
        acquire(str(tmp_path / "nope" / "a.lock"), "a", "r", 60, check_mode=True, run=dict(GOOD_RUN, pid=-1))
