# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replace_app / restore_app on a real release layout, with a fake service and a fake probe."""

import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import HealthCheckTimeout
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import describe_releases
from ansible_collections.zerodowntime.rollout.plugins.module_utils._replace import (
    ReplaceError,
    StopAfterDelay,
    replace_app,
    restore_app,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import ServiceError
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.release_archive import archive

NOW = 1700000000.0


def ticker():
    """A clock that moves 0.25s every time it is read."""
    return iter(x * 0.25 for x in range(1, 1000)).__next__


class Host:
    """A layout with v1 active and v2 unpacked; a fake service and probe logging into one list."""

    def __init__(self, tmp_path):
        self.root = str(tmp_path / "app")
        for version in ("v1", "v2"):
            manage_release(self.root, state="present", version=version, src=archive(tmp_path, version), now=self.now)
        manage_release(self.root, state="active", version="v1", now=self.now)
        self.log = []
        self.fail = {}
        self.service = self
        self.probe = Probe(self, "probe")
        self.quick = Probe(self, "quick")

    @staticmethod
    def now():
        return NOW

    def current(self):
        return os.readlink(os.path.join(self.root, "current"))

    def _act(self, name):
        self.log.append((name, self.current()))
        if name in self.fail:
            raise self.fail[name]

    def stop(self):
        self._act("stop")

    def start(self):
        self._act("start")

    def names(self):
        return [name for name, _current in self.log]

    def replace(self, version="v2", **kwargs):
        kwargs.setdefault("clock", ticker())
        return replace_app(self.root, version, self.service, self.probe, now=self.now, **kwargs)

    def restore(self, version="v1", **kwargs):
        return restore_app(self.root, version, self.service, self.probe, quick_probe=self.quick, now=self.now, **kwargs)

    def snapshot(self):
        """Every path under the root with its link target, its content or None (a directory)."""
        paths = [os.path.join(d, n) for d, dirs, files in os.walk(self.root) for n in dirs + files]
        return {p: os.readlink(p) if os.path.islink(p) else _read(p) if os.path.isfile(p) else None for p in paths}


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


class Probe:
    def __init__(self, host, name):
        self.host, self.name = host, name

    def run(self):
        self.host._act(self.name)
        return {"status": 200, "attempts": 1}


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


# --- replace_app -------------------------------------------------------------------------------------


def test_replace_runs_stop_deploy_start_ready_in_order(host):
    result = host.replace()
    assert host.log == [("stop", "releases/v1"), ("start", "releases/v2"), ("probe", "releases/v2")]
    assert host.current() == "releases/v2"
    assert result["changed"] is True and result["switched"] is True and result["ready"] is True
    assert (result["current"], result["previous"]) == ("v2", "v1")
    assert result["probe"] == {"status": 200, "attempts": 1}
    assert [s["name"] for s in result["steps"]] == ["stop", "deploy", "start", "ready"]
    assert all(isinstance(s["seconds"], float) and s["seconds"] == 0.25 for s in result["steps"])
    assert result["elapsed"] == 1.0


def test_stop_delay_waits_before_the_stop_only(host):
    """rolling_update_drain_delay: the wait comes right before the stop, in the same call, on the old release."""
    host.service = StopAfterDelay(
        host, 1.5, sleep=lambda seconds: host.log.append(("sleep %g" % seconds, host.current()))
    )
    host.replace()
    assert host.log == [
        ("sleep 1.5", "releases/v1"),
        ("stop", "releases/v1"),
        ("start", "releases/v2"),
        ("probe", "releases/v2"),
    ]
    host.log.clear()
    host.restore()  # the rollback waits too: it drains the host again before it stops the app
    assert host.names()[:2] == ["sleep 1.5", "stop"]
    assert host.service.names is not None  # everything but stop is the service's own


@pytest.mark.parametrize("delay", [-1, None, float("nan")])
def test_stop_delay_must_be_zero_or_more(host, delay):
    with pytest.raises(ValidationError, match="stop_delay must be 0 or more seconds"):
        StopAfterDelay(host, delay)


def test_release_not_unpacked_stops_nothing(host):
    before = host.snapshot()
    with pytest.raises(ReplaceError) as info:
        host.replace("v3")
    assert host.log == [] and host.snapshot() == before
    assert info.value.details["changed"] is False and info.value.details["switched"] is False
    assert info.value.details["current"] == "v1" and "nothing was stopped" in info.value.msg


def test_incomplete_release_dir_stops_nothing(host):
    os.mkdir(os.path.join(host.root, "releases", "v3"))
    with pytest.raises(ReplaceError, match="not unpacked and complete"):
        host.replace("v3")
    assert host.log == [] and host.current() == "releases/v1"


@pytest.mark.parametrize(
    "error",
    [HealthCheckTimeout("not healthy within 30s", {"status": 503, "attempts": 30}), RolloutError("503 from /health")],
)
def test_failing_probe_reports_the_ready_step(host, error):
    host.fail["probe"] = error
    with pytest.raises(ReplaceError) as info:
        host.replace()
    details = info.value.details
    assert details["failed_step"] == "ready" and details["switched"] is True and details["current"] == "v2"
    assert details["previous"] == "v1" and details["changed"] is True
    assert [s["name"] for s in details["steps"]] == ["stop", "deploy", "start", "ready"]
    assert error.msg in info.value.msg and host.current() == "releases/v2"


def test_failing_stop_switches_nothing(host):
    host.fail["stop"] = ServiceError("systemctl stop app exited with 1")
    with pytest.raises(ReplaceError) as info:
        host.replace()
    assert info.value.details["failed_step"] == "stop" and info.value.details["switched"] is False
    assert info.value.details["changed"] is False
    assert host.names() == ["stop"] and host.current() == "releases/v1"


def test_failing_start_after_the_switch(host):
    host.fail["start"] = ServiceError("exited with 3")
    with pytest.raises(ReplaceError) as info:
        host.replace()
    assert info.value.details["failed_step"] == "start" and info.value.details["switched"] is True
    assert host.names() == ["stop", "start"] and host.current() == "releases/v2"


def test_os_error_in_a_step_becomes_replace_error(host):
    host.fail["start"] = OSError(13, "Permission denied")
    with pytest.raises(ReplaceError) as info:
        host.replace()
    assert info.value.details["failed_step"] == "start" and info.value.details["changed"] is True


def test_steps_split_in_two_calls(host):
    first = host.replace(steps=["stop", "deploy"])
    assert host.names() == ["stop"] and host.current() == "releases/v2"
    assert [s["name"] for s in first["steps"]] == ["stop", "deploy"]
    assert first["ready"] is None and first["switched"] is True
    second = host.replace(steps=["start", "ready"])
    assert host.log[1:] == [("start", "releases/v2"), ("probe", "releases/v2")]
    assert [s["name"] for s in second["steps"]] == ["start", "ready"]
    assert second["ready"] is True and second["switched"] is False and second["current"] == "v2"


@pytest.mark.parametrize("steps", [["deploy", "stop"], [], ["stop", "restart"], ["ready", "start"]])
def test_invalid_steps_are_refused(host, steps):
    with pytest.raises(ValidationError):
        host.replace(steps=steps)
    assert host.log == [] and host.current() == "releases/v1"


def test_ready_step_needs_a_probe(host):
    with pytest.raises(ValidationError, match="readiness probe"):
        replace_app(host.root, "v2", host.service, None)
    assert host.log == []


def test_check_mode_changes_nothing(host):
    before = host.snapshot()
    result = host.replace(check_mode=True)
    assert host.snapshot() == before and host.log == []
    assert result["changed"] is True and result["switched"] is False and result["current"] == "v1"
    assert [s["name"] for s in result["steps"]] == ["stop", "deploy", "start", "ready"]
    assert "switch current from v1 to v2" in result["msg"]


def test_replace_on_the_current_release_does_not_switch(host):
    result = host.replace("v1")
    assert result["switched"] is False and result["current"] == "v1"
    assert host.names() == ["stop", "start", "probe"]


# --- restore_app -------------------------------------------------------------------------------------


def test_restore_on_target_and_ready_does_nothing(host):
    before = host.snapshot()
    result = host.restore("v1")
    assert result["changed"] is False and result["ready"] is True and result["switched"] is False
    assert host.names() == ["quick"] and host.snapshot() == before


def test_restore_switches_back_and_marks_the_release_rolled_back(host):
    host.replace()
    host.log[:] = []
    result = host.restore("v1")
    assert host.current() == "releases/v1"
    assert host.log == [("stop", "releases/v2"), ("start", "releases/v1"), ("probe", "releases/v1")]
    assert result["switched"] is True and result["rolled_back_from"] == "v2" and result["ready"] is True
    assert [s["name"] for s in result["steps"]] == ["stop", "deploy", "start", "ready"]
    releases = describe_releases(host.root)
    assert releases["current"] == "v1" and releases["rolled_back"] == ["v2"]


def test_restore_without_version_goes_to_the_previous_release(host):
    host.replace()
    result = host.restore(None)
    assert result["current"] == "v1" and host.current() == "releases/v1"


def test_restore_of_an_unready_app_reports_instead_of_raising(host):
    host.replace()
    host.fail["probe"] = HealthCheckTimeout("no 200 within 60s", {"status": None})
    result = host.restore("v1")
    assert result["ready"] is False and result["changed"] is True and result["current"] == "v1"
    assert "NOT ready: no 200 within 60s" in result["msg"]


def test_restore_tolerates_a_failed_stop(host):
    host.replace()
    host.log[:] = []
    host.fail["stop"] = ServiceError("stop timed out")
    result = host.restore("v1")
    assert host.names() == ["stop", "start", "probe"]
    assert result["ready"] is True and result["current"] == "v1"
    assert "the stop failed (stop timed out)" in result["msg"]


def test_restore_restarts_when_the_quick_probe_fails(host):
    host.fail["quick"] = RolloutError("connection refused")
    result = host.restore("v1")
    assert host.names() == ["quick", "stop", "start", "probe"]
    assert result["switched"] is False and result["changed"] is True and result["ready"] is True


def test_restore_to_a_missing_release_raises(host):
    with pytest.raises(ReplaceError, match="Cannot switch back to release v9") as info:
        host.restore("v9")
    assert info.value.details["switched"] is False and host.current() == "releases/v1"


def test_restore_check_mode_changes_nothing(host):
    host.replace()
    host.log[:] = []
    before = host.snapshot()
    result = host.restore("v1", check_mode=True)
    assert result["changed"] is True and result["current"] == "v2"
    assert host.log == [] and host.snapshot() == before
