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
