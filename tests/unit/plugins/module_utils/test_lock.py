import json
import multiprocessing
import os
import shutil
import stat
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.errors import LockHeldError, LockPathError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.operations import acquire, release
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.hostile import as_nobody, shared_dir


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


def test_missing_folders_are_created_only_for_real(tmp_path):
    # Changed behaviour: a missing folder used to be refused; now it is created (0700), and check mode creates nothing.
    lock = str(tmp_path / "nope" / "locks" / "a.lock")
    r = acquire(lock, "a", "r", 60, check_mode=True, clock=Clock())
    assert r["changed"] and "would create" in r["msg"] and not os.path.exists(str(tmp_path / "nope"))
    assert acquire(lock, "a", "r", 60, clock=Clock())["changed"] and held(lock)["owner"] == "a"


def test_ttl_beyond_seven_days_is_refused(lock):
    with pytest.raises(ValidationError, match="at most 604800"):
        acquire(lock, "a", "r", 7 * 86400 + 1)
    assert not os.path.exists(lock)


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


# -- the race: exactly one winner whenever the lock changes hands ----------------------------------

RACERS = 20
ROUNDS = 4


def racer(start, results, index, kwargs):
    """One contender, in its own process: wait for the others, then try to take the lock once."""
    try:
        start.wait(timeout=60)
        result = acquire(**kwargs)
        outcome = "won" if result["changed"] and result["acquired"] else "unchanged"
        results.put((index, outcome, result["lock"].get("run_id")))
    except LockHeldError as exc:
        results.put((index, "lost", exc.msg))
    except Exception as exc:  # a crash is a failure of the test, reported with its cause
        results.put((index, "error", repr(exc)))


def race(kwargs_of):
    """Start RACERS processes at one barrier; return their (index, outcome, detail) tuples."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=racer, args=(start, results, i, kwargs_of(i))) for i in range(RACERS)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 120
    out = []
    try:
        while len(out) < RACERS:
            out.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
    finally:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return out


def plant(path, record):
    """A lock file as a run of the same user left it (mode 0600, owned by the running user)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)


def scenario(name, lock, now):
    """(lock record to start from or None, kwargs of racer i) for each way the lock changes hands."""
    base = {"path": lock, "ttl": 3600}
    if name == "free":
        return None, lambda i: dict(base, owner="op%d@ctl" % i, run_id="r%d" % i)
    if name == "expired":
        old = {"owner": "old@ctl", "run_id": "r-old", "started": now - 7200, "ttl": 60}
        return old, lambda i: dict(base, owner="op%d@ctl" % i, run_id="r%d" % i)
    if name == "same owner":
        old = {"owner": "alice@ctl", "run_id": "r-old", "started": now - 30, "ttl": 3600}
        return old, lambda i: dict(base, owner="alice@ctl", run_id="r%d" % i, clock=Clock(now))
    if name == "same owner, run gone":
        old = {"owner": "alice@ctl", "run_id": "r-old", "started": now - 30, "ttl": 3600}
        old.update(controller="ctl", controller_pid=99999, controller_pid_started="1")
        return old, lambda i: dict(
            base, owner="alice@ctl", run_id="r%d" % i, clock=Clock(now), run=run_of(1000 + i, "7")
        )
    if name == "forced":
        old = {"owner": "bob@ctl", "run_id": "r-bob", "started": now - 10, "ttl": 3600}
        return old, lambda i: dict(base, owner="op%d@ctl" % i, run_id="r%d" % i, force=True, clock=Clock(now))
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["free", "expired", "same owner", "same owner, run gone", "forced"])
def test_exactly_one_winner_per_round(tmp_path, name):
    lock = str(tmp_path / "app.lock")
    for round_no in range(ROUNDS):
        start, kwargs_of = scenario(name, lock, time.time())
        if os.path.lexists(lock):
            os.unlink(lock)
        if start is not None:
            plant(lock, start)
        out = race(kwargs_of)
        errors = [o for o in out if o[1] == "error"]
        winners = [o for o in out if o[1] == "won"]
        assert errors == [], errors
        assert len(winners) == 1, "round %d: %d winners: %s" % (round_no, len(winners), winners)
        assert [o[1] for o in out].count("lost") == RACERS - 1, out
        # The lock on disk is the winner's, and it is a private regular file.
        assert held(lock)["run_id"] == winners[0][2]
        assert stat.S_IMODE(os.lstat(lock).st_mode) == 0o600


# -- hostile neighbours: another local user (``nobody``) where the lock lives ----------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="plays another local user with setpriv, as root"
)
NOBODY = 65534
SECRET = "s3cret-token-of-root"


def nobody_writes(path, text):
    as_nobody("sh", "-c", 'printf %s "$1" > "$2"', "sh", text, path)


@pytest.fixture
def shared():
    """A sticky world-writable directory like /var/tmp, that nobody can reach."""
    with shared_dir("zdr-lock-test-") as path:
        yield path


@pytest.fixture
def victim(tmp_path):
    """A root-only file that must never be read into a result nor written through a link."""
    path = tmp_path / "victim.json"
    path.write_text(json.dumps({"owner": SECRET, "run_id": "x", "started": time.time(), "ttl": 3600}))
    os.chmod(str(path), 0o600)
    return str(path)


def content(path):
    with open(path, "rb") as f:
        return f.read()


def assert_private_lock(path, owner):
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o600
    assert held(path)["owner"] == owner


@needs_root
def test_planted_temporary_file_symlinks_are_not_followed(shared, victim):
    lock = os.path.join(shared, "app.lock")
    acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
    before = content(victim)
    # The name the replace used to write through: <lock>.<pid>.tmp
    planted = "%s.%d.tmp" % (lock, os.getpid())
    as_nobody("ln", "-s", victim, planted)
    r = acquire(lock, "bob@ctl", "run2", 60, clock=Clock(2000))
    assert r["taken_over"] == "expired"
    assert content(victim) == before and os.readlink(planted) == victim
    assert_private_lock(lock, "bob@ctl")


@needs_root
def test_symlinked_lock_is_refused_and_never_read(shared, victim):
    lock = os.path.join(shared, "app.lock")
    as_nobody("ln", "-s", victim, lock)
    before = content(victim)
    with pytest.raises(LockHeldError) as e:
        acquire(lock, "bob@ctl", "run2", 60)
    assert "symlink" in e.value.msg and "force" in e.value.msg
    assert SECRET not in e.value.msg and SECRET not in json.dumps(e.value.details)
    assert os.readlink(lock) == victim
    # force replaces the link itself, never what it points to
    r = acquire(lock, "bob@ctl", "run2", 60, force=True)
    assert r["taken_over"] == "forced" and SECRET not in json.dumps(r)
    assert_private_lock(lock, "bob@ctl")
    assert content(victim) == before


@needs_root
def test_release_never_follows_a_symlinked_lock(shared, victim):
    lock = os.path.join(shared, "app.lock")
    as_nobody("ln", "-s", victim, lock)
    before = content(victim)
    with pytest.raises(LockHeldError) as e:
        release(lock, "bob@ctl", "run2")
    assert "symlink" in e.value.msg and SECRET not in e.value.msg
    assert os.readlink(lock) == victim
    r = release(lock, "bob@ctl", "run2", force=True)
    assert r["released"] and SECRET not in json.dumps(r)
    assert not os.path.lexists(lock) and content(victim) == before


@needs_root
def test_lock_of_another_user_is_refused_and_force_recovers(shared):
    lock = os.path.join(shared, "app.lock")
    # Looks like an expired lock of the same owner: it used to be taken over, and `previous` was whatever it said.
    nobody_writes(lock, json.dumps({"owner": "alice@ctl", "run_id": "old", "started": 1, "ttl": 60}))
    with pytest.raises(LockHeldError, match="owned by uid %d" % NOBODY) as e:
        acquire(lock, "alice@ctl", "run2", 60)
    assert "force" in e.value.msg and os.lstat(lock).st_uid == NOBODY
    r = acquire(lock, "alice@ctl", "run2", 60, force=True)
    assert r["taken_over"] == "forced" and r["previous"]["bad"] is True
    assert_private_lock(lock, "alice@ctl")


@needs_root
def test_planted_guard_is_refused_and_force_recovers(shared, victim):
    lock = os.path.join(shared, "app.lock")
    guard = lock + ".guard"
    as_nobody("ln", "-s", victim, guard)
    before = content(victim)
    with pytest.raises(LockHeldError, match="guard") as e:
        acquire(lock, "alice@ctl", "run1", 60)
    assert "symlink" in e.value.msg and not os.path.lexists(lock) and content(victim) == before
    acquire(lock, "alice@ctl", "run1", 60, force=True)
    assert_private_lock(lock, "alice@ctl")
    info = os.lstat(guard)
    assert stat.S_ISREG(info.st_mode) and info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o600
    assert content(victim) == before


@needs_root
def test_a_directory_planted_at_the_lock_name_is_moved_aside_only_by_force(shared):
    lock = os.path.join(shared, "app.lock")
    as_nobody("mkdir", lock)
    nobody_writes(os.path.join(lock, "keep"), "data")
    with pytest.raises(LockHeldError, match="not a regular file"):
        acquire(lock, "alice@ctl", "run1", 60)
    acquire(lock, "alice@ctl", "run1", 60, force=True)
    assert_private_lock(lock, "alice@ctl")
    (aside,) = [n for n in os.listdir(shared) if n.startswith(".app.lock.removed-")]
    assert os.listdir(os.path.join(shared, aside)) == ["keep"]  # moved, never descended into


@pytest.mark.parametrize(
    "text",
    [
        '{"owner": "eve", "run_id": "r", "started": NaN, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": Infinity, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": -Infinity, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": 1e308, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": -1e308, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": 4102444800, "ttl": 60}',  # 2100
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": 1e308}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": 100000000}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": NaN}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": 0}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": true}',
        '{"owner": "eve", "run_id": "r", "started": "yesterday", "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": 1%(zeros)s, "ttl": 60}',
        '{"owner": 5, "run_id": "r", "started": %(now)s, "ttl": 60}',
        '{"owner": "eve", "run_id": 7, "started": %(now)s, "ttl": 60}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": 60, "controller": "c", "controller_pid": -1}',
        '{"owner": "eve", "run_id": "r", "started": %(now)s, "ttl": 60, "controller": "c", "controller_pid": 1e300}',
        "[" * 60000,
        '["owner", "eve"]',
    ],
    ids=[
        "started-nan",
        "started-inf",
        "started-minus-inf",
        "started-1e308",
        "started-minus-1e308",
        "started-2100",
        "ttl-1e308",
        "ttl-3-years",
        "ttl-nan",
        "ttl-0",
        "ttl-bool",
        "started-string",
        "started-10e400",
        "owner-number",
        "run_id-number",
        "pid-negative",
        "pid-float",
        "deep-nesting",
        "not-an-object",
    ],
)
def test_insane_lock_is_refused_and_force_recovers(lock, text):
    now = time.time()
    with open(lock, "w") as f:
        f.write(text % {"now": now - 10, "zeros": "0" * 400} if "%(" in text else text)
    os.chmod(lock, 0o600)
    before = raw(lock)
    with pytest.raises(LockHeldError, match="force") as e:
        acquire(lock, "bob@ctl", "run2", 60)
    assert "malformed lock file" in e.value.msg or "unreadable lock file" in e.value.msg
    assert raw(lock) == before
    with pytest.raises(LockHeldError, match="force"):
        release(lock, "bob@ctl", "run2")
    r = acquire(lock, "bob@ctl", "run2", 60, force=True)
    assert r["taken_over"] == "forced" and r["previous"]["bad"] is True
    assert_private_lock(lock, "bob@ctl")


def test_lock_and_its_folders_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        lock = str(tmp_path / "a" / "b" / "locks" / "app.lock")
        acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
        assert_private_lock(lock, "alice@ctl")
        for folder in ("a", "a/b", "a/b/locks"):
            info = os.lstat(str(tmp_path / folder))
            assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
        r = acquire(lock, "bob@ctl", "run2", 60, clock=Clock(2000))
        assert r["taken_over"] == "expired"
        assert_private_lock(lock, "bob@ctl")
        assert stat.S_IMODE(os.lstat(lock + ".guard").st_mode) == 0o600
        # mkstemp-style temporary files never stay behind
        assert sorted(os.listdir(os.path.dirname(lock))) == ["app.lock", "app.lock.guard"]
    finally:
        os.umask(old)


@needs_root
def test_lock_in_a_sticky_shared_directory_works(shared):
    old = os.umask(0)
    try:
        lock = os.path.join(shared, "app.lock")
        acquire(lock, "alice@ctl", "run1", 60, clock=Clock())
        assert_private_lock(lock, "alice@ctl")
        assert release(lock, "alice@ctl", "run1")["released"] and not os.path.lexists(lock)
        assert os.listdir(shared) == ["app.lock.guard"]
    finally:
        os.umask(old)


@needs_root
@pytest.mark.parametrize("kind", ["symlink of nobody", "folder of nobody", "below a folder of nobody", "0777 folder"])
def test_lock_folder_that_cannot_be_trusted_is_refused_even_with_force(shared, tmp_path, kind):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    evil = os.path.join(shared, "evil")
    lock = os.path.join(evil, "app.lock")
    if kind == "symlink of nobody":
        as_nobody("ln", "-s", str(target), evil)
        expected = "symlink"
    elif kind == "folder of nobody":
        as_nobody("mkdir", evil)
        expected = "uid %d" % NOBODY
    elif kind == "below a folder of nobody":
        as_nobody("mkdir", evil)
        lock = os.path.join(evil, "locks", "app.lock")
        expected = "uid %d" % NOBODY
    else:
        os.mkdir(evil)
        os.chmod(evil, 0o777)
        expected = "writable by other users"
    for force in (False, True):
        with pytest.raises(LockPathError, match=expected) as e:
            acquire(lock, "alice@ctl", "run1", 60, force=force)
        assert "rollout_lock_path" in e.value.msg
    assert os.listdir(str(target)) == []
    if kind != "symlink of nobody":
        assert os.listdir(evil) == []


def child_as_nobody(fn, results):
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        fn()
        results.put("no error")
    except Exception as exc:
        results.put("%s: %s" % (type(exc).__name__, getattr(exc, "msg", exc)))


@needs_root
@pytest.mark.parametrize("where", ["existing", "missing"])
def test_permission_denied_names_rollout_lock_path_and_become(shared, where):
    locks = os.path.join(os.path.dirname(shared), "locks")
    os.mkdir(locks, 0o700)
    if where == "existing":
        lock = os.path.join(locks, "app.lock")
        acquire(lock, "root@ctl", "run0", 60, clock=Clock())
    else:
        lock = os.path.join(locks, "sub", "app.lock")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    proc = ctx.Process(target=child_as_nobody, args=(lambda: acquire(lock, "op@ctl", "run1", 60), results))
    proc.start()
    try:
        msg = results.get(timeout=60)
    finally:
        proc.join(timeout=30)
    assert msg.startswith("LockPathError") and "permission denied" in msg, msg
    assert "rollout_lock_path" in msg and "become" in msg, msg
    assert ("Cannot open %s " % (locks if where == "existing" else os.path.join(locks, "sub"))) in msg, msg


@needs_root
def test_a_user_without_become_takes_a_lock_in_a_sticky_shared_directory(shared):
    # The way there has an execute-only folder (0711): like a path lookup, the walk needs no read permission.
    lock = os.path.join(shared, "app.lock")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def cycle():
        acquire(lock, "op@ctl", "run1", 60)
        release(lock, "op@ctl", "run1")
        acquire(lock, "op@ctl", "run2", 60)

    proc = ctx.Process(target=child_as_nobody, args=(cycle, results))
    proc.start()
    try:
        msg = results.get(timeout=60)
    finally:
        proc.join(timeout=30)
    assert msg == "no error"
    info = os.lstat(lock)
    assert info.st_uid == NOBODY and stat.S_IMODE(info.st_mode) == 0o600 and held(lock)["run_id"] == "run2"
    # root (become) is refused by that user's lock, and force recovers
    with pytest.raises(LockHeldError, match="owned by uid %d" % NOBODY):
        acquire(lock, "root@ctl", "run3", 60)
    acquire(lock, "root@ctl", "run3", 60, force=True)
    assert_private_lock(lock, "root@ctl")


@pytest.mark.parametrize("at", ["lock", "guard"])
def test_a_hard_link_to_another_file_is_refused_and_never_changed(tmp_path, victim, at):
    # Where fs.protected_hardlinks is off, another user can hard-link any file of root at these names.
    os.chmod(victim, 0o644)
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    lock = str(locks / "app.lock")
    os.link(victim, lock if at == "lock" else lock + ".guard")
    before = content(victim)
    with pytest.raises(LockHeldError, match="hard links") as e:
        acquire(lock, "alice@ctl", "run1", 60)
    assert SECRET not in e.value.msg and SECRET not in json.dumps(e.value.details)
    r = acquire(lock, "alice@ctl", "run1", 60, force=True)
    assert SECRET not in json.dumps(r)
    assert_private_lock(lock, "alice@ctl")
    assert content(victim) == before and stat.S_IMODE(os.stat(victim).st_mode) == 0o644
    assert os.stat(victim).st_nlink == 1
