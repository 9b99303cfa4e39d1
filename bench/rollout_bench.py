#!/usr/bin/env python3
"""Benchmark of the rolling_update role on the local demo fleet (not a test; results in docs/performance.md).

The headline (issue 12) compares, on the same fleet and load, in the same run, in interleaved
rounds (classic, classic_cg, ours, classic, classic_cg, ours, ...), each on a fresh fleet:

1. classic     bench/classic.yml, the classic lamp_haproxy pattern as published: disable the server
               with socat on the admin socket, stop, switch ``current``, start, wait for the port, enable;
2. classic_cg  bench/classic_cg.yml, the same pattern with community.general.haproxy (state disabled
               with drain and wait, then state enabled with wait). community.general comes from the
               ``ansible`` wheel that ``make venv`` downloads into .cache/wheels/: only
               ansible_collections/community/general is extracted, once, into .cache/bench/;
3. classic_ready  bench/classic_ready.yml, bench/classic.yml that also waits until the app answers its
               readiness URL (uri in an until loop) before the enable: what "no failed request" costs the
               classic pattern. Reported beside the others, not in the ratio;
4. ours        ansible-playbook zerodowntime.rollout.rolling_update with the role's defaults.

The fleet: --hosts app hosts (4) behind a real HAProxy (``check inter 500ms rise 2 fall 2``,
``retries 0``), apps that answer 503 on /health for their first --startup-delay seconds (1) after a
start, and --rate requests/s (150) on --path (/health) through the frontend. Reported: the median
wall time of each, the failed requests of each, THE ratio ours / (the faster classic variant),
target <= 1.0 with 0 failed requests, and our overhead per host above the physical floor (graceful
stop + start-to-ready + the readiness successes, measured on this machine), target <= 1.0 s.

Further scenarios, each skippable with --skip:

- task_cost  the fixed cost of one module task and of one controller-only task on this machine;
- warmup     ours vs classic with an app that warms up for --warmup seconds, load on /health;
- scale      10 and 100 hosts, 10 batches each (rollout_serial "10%"): wall time, controller CPU per
             host (user+sys of the ansible-playbook process tree), tasks per host, app memory;
- baseline   with --baseline-ref REF: each scale run again with REF's playbook and collection (a git
             worktree in bench/out/baseline-REF), right after the current tree's: controller CPU per
             host of both and their ratio (issue 12: at 100 hosts at most 1/3 of the baseline).

Usage (from the repo root, after ``make venv``)::

    .venv/bin/python bench/rollout_bench.py [--rounds 2] [--hosts 4] [--rate 150] [--path /health]
        [--scale 10,100] [--baseline-ref cf425ac] [--skip task_cost,classic,classic_cg,ours,warmup,scale,baseline]
        [--pipelining] [--json docs/performance.json]
    .venv/bin/python bench/rollout_bench.py --report docs/performance.json     # print the tables again

Per-task timings come from bench/callback_plugins/bench_timings.py, enabled only for these runs. The
time of a step is the one the module measured when its result carries ``steps`` (rotation,
app_replace), else it is mapped from the role's task file. Step names are the rollout report's
(``STEPS`` in plugins/plugin_utils/_report/steps.py). The machine's load average is recorded at
the start and the end, and around every playbook run. Every fleet is brought down at the end, also
on failure or Ctrl-C.
"""

import argparse
import ast
import contextlib
import glob
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.fleet.fleet import APP_CTL, Fleet  # noqa: E402
from tests.fixtures.fleet.loadgen import LoadGenerator  # noqa: E402
from tests.fixtures.fleet.playbook import PLAYBOOK, ansible_env, fleet_version, write_inventory  # noqa: E402
from tests.fixtures.fleet.release import build_artifact, install_release  # noqa: E402
from tests.fixtures.fleet.sampler import RotationSampler  # noqa: E402
from tests.fixtures.fleet.system import FleetError, free_port, http_get  # noqa: E402

CLASSIC = os.path.join(HERE, "classic.yml")
CLASSIC_CG = os.path.join(HERE, "classic_cg.yml")
CLASSIC_READY = os.path.join(HERE, "classic_ready.yml")
CALLBACKS = os.path.join(HERE, "callback_plugins")
# Python's bytecode cache for every ansible-playbook the benchmark runs (all variants alike), as on an operator's
# controller after its first run: ansible-core's own files come with theirs (pip compiles them), and Python writes
# those of a collection's plugins on first import. None: the calling environment decides (--no-bytecode-cache; a
# PYTHONDONTWRITEBYTECODE=1 there makes every Ansible worker compile the collection's plugins again).
BYTECODE_CACHE = None
REPORT_MODEL = os.path.join(ROOT, "plugins", "plugin_utils", "_report", "steps.py")
ROLE_DEFAULTS = os.path.join(ROOT, "roles", "rolling_update", "defaults", "main.yml")
WHEELS = os.path.join(ROOT, ".cache", "wheels")
BENCH_COLLECTIONS = os.path.join(ROOT, ".cache", "bench")
CG_PREFIX = "ansible_collections/community/general/"
CG_DIR = os.path.join(BENCH_COLLECTIONS, *CG_PREFIX.strip("/").split("/"))
# The community.general.haproxy options bench/classic_cg.yml sets (checked against the module's DOCUMENTATION).
CG_HAPROXY_OPTIONS = ("socket", "backend", "host", "state", "drain", "wait", "wait_interval", "wait_retries")

HEADLINE = ("classic", "classic_cg", "classic_ready", "ours")  # the order of one round
RATIO_CLASSICS = ("classic", "classic_cg")  # the published pattern, as issue 12 measures against it
SCENARIOS = ("task_cost", "classic", "classic_cg", "classic_ready", "ours", "warmup", "scale", "baseline")
LABELS = {
    "classic": "classic: disable/enable with socat (bench/classic.yml)",
    "classic_cg": "classic_cg: community.general.haproxy drain + wait (bench/classic_cg.yml)",
    "classic_ready": "classic_ready: classic + wait for readiness (bench/classic_ready.yml; not in the ratio)",
    "ours": "ours: zerodowntime.rollout.rolling_update, defaults",
}


class BenchError(Exception):
    """A precondition of the benchmark is not met (the message says what to do)."""


def _report_steps():
    """The rollout report's step list: the bench and the report use this one list (issue 12)."""
    try:
        spec = importlib.util.spec_from_file_location("_zdt_rollout_report_model", REPORT_MODEL)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return tuple(mod.STEPS)
    except Exception:  # e.g. it came to import collection code: its STEPS is still a literal
        with open(REPORT_MODEL) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "STEPS" for t in node.targets):
                return tuple(ast.literal_eval(node.value))
        raise


STEPS = _report_steps()
OTHER = "other"  # role tasks outside any step (runbook includes, facts), tasks of the playbook itself
CALL_OVERHEAD = "call overhead"  # time of a step-reporting module task outside the steps it measured

# For tasks whose result carries no ``steps``: role task file (below tasks/, without .yml) -> step,
# the first of the names that is in STEPS (OTHER when none is). Files of the role before and after
# its rewrite into three module calls per host. Not listed, so OTHER: main (the runbook's includes and
# facts) and replace (bookkeeping around app_replace, whose own steps come from its result).
_FILE_STEP = {
    "preflight": ("preflight",),
    "read_lb": ("preflight",),
    "plan": ("preflight",),
    "skip": ("check",),
    "capacity": ("check",),
    "prepare": ("unpack",),
    "unpack": ("unpack",),
    "drain": ("drain",),
    "haproxy/drain": ("drain",),
    "aws/drain": ("drain",),
    "stop": ("stop",),
    "deploy": ("deploy",),
    "start": ("start",),
    "ready": ("ready",),
    "enable": ("enable",),
    "haproxy/enable": ("enable",),
    "aws/enable": ("enable",),
    "stabilize": ("stabilize",),
    "canary": ("canary", "stabilize"),
    "canary_window": ("canary", "stabilize"),
    "rollback": ("rollback",),
    "revert": ("rollback",),
}
# The LB read serves preflight and the stabilisation check: the step depends on where the host is.
_INHERIT = frozenset(("haproxy/check", "aws/check"))
_ROLE_FILE = re.compile(r"roles/rolling_update/tasks/(.+?)\.ya?ml(?::\d+)?$")
_LIVE = []  # fleets that are up; brought down in main()'s finally
_PROBES = {}  # (startup_delay, latency) -> the app's measured start-to-ready and stop


def log(msg, *args):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args if args else msg))
    sys.stderr.flush()


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- community.general, baseline


def _ansible_wheel_version():
    """The ``ansible`` version that scripts/bootstrap.sh downloads: ``# amazon.aws from: ansible==X``
    in requirements/dev.txt."""
    with open(os.path.join(ROOT, "requirements", "dev.txt")) as f:
        m = re.search(r"^# amazon\.aws from: ansible==(\S+)\s*$", f.read(), re.M)
    if not m:
        raise BenchError("requirements/dev.txt names no 'ansible==' wheel ('# amazon.aws from: ansible==X')")
    return m.group(1)


def _cg_version():
    with open(os.path.join(CG_DIR, "MANIFEST.json")) as f:
        return json.load(f)["collection_info"]["version"]


def ensure_community_general():
    """community.general for bench/classic_cg.yml: ansible_collections/community/general taken, alone,
    from the ``ansible`` wheel in .cache/wheels/ into .cache/bench/ (once; MANIFEST.json marks a
    complete extraction). Checks that community.general.haproxy has the options classic_cg.yml sets.
    Returns the collections root to add to ANSIBLE_COLLECTIONS_PATH."""
    if not os.path.exists(os.path.join(CG_DIR, "MANIFEST.json")):
        version = _ansible_wheel_version()
        wheels = sorted(glob.glob(os.path.join(WHEELS, "ansible-%s-*.whl" % version)))
        if not wheels:
            raise BenchError(
                "the ansible==%s wheel is missing from %s (community.general for classic_cg is taken from it): "
                "run `make venv`, or --skip classic_cg" % (version, os.path.relpath(WHEELS, ROOT))
            )
        log("extracting community.general from %s", os.path.basename(wheels[-1]))
        os.makedirs(BENCH_COLLECTIONS, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".extract-", dir=BENCH_COLLECTIONS)
        try:
            with zipfile.ZipFile(wheels[-1]) as z:
                members = [n for n in z.namelist() if n.startswith(CG_PREFIX)]
                if not members:
                    raise BenchError("%s holds no %s" % (wheels[-1], CG_PREFIX))
                z.extractall(tmp, members)
            shutil.rmtree(CG_DIR, ignore_errors=True)  # an extraction that was cut short
            os.makedirs(os.path.dirname(CG_DIR), exist_ok=True)
            os.rename(os.path.join(tmp, *CG_PREFIX.strip("/").split("/")), CG_DIR)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(CG_DIR, "plugins", "modules", "haproxy.py")) as f:
        tree = ast.parse(f.read())
    doc = next(
        (
            ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in n.targets)
        ),
        "",
    )
    missing = set(CG_HAPROXY_OPTIONS) - set((yaml.safe_load(doc) or {}).get("options", {}))
    if missing:
        raise BenchError(
            "community.general.haproxy %s has no option(s) %s: update bench/classic_cg.yml"
            % (_cg_version(), ", ".join(sorted(missing)))
        )
    return BENCH_COLLECTIONS


def _git(*argv, cwd=ROOT):
    p = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=False)
    if p.returncode:
        raise BenchError("git %s: %s" % (" ".join(argv), (p.stderr or p.stdout).strip()))
    return p.stdout.strip()


def ensure_baseline(ref, workdir):
    """A checkout of ``ref`` (``git worktree add --detach WORKDIR/baseline-REF REF``, reused when
    present) and a collections root whose ansible_collections/zerodowntime/rollout links to it."""
    commit = _git("rev-parse", "--verify", "--quiet", ref + "^{commit}")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ref)
    tree = os.path.join(workdir, "baseline-" + safe)
    if os.path.exists(os.path.join(tree, ".git")):
        if _git("rev-parse", "HEAD", cwd=tree) != commit:
            log("baseline worktree %s: checking out %s", tree, commit[:10])
            _git("checkout", "--quiet", "--detach", commit, cwd=tree)
    elif os.path.exists(tree) and os.listdir(tree):
        raise BenchError("%s exists and is not a git worktree: remove it" % tree)
    else:
        log("baseline: git worktree add --detach %s %s", os.path.relpath(tree, ROOT), ref)
        _git("worktree", "add", "--quiet", "--detach", tree, commit)
    coll = os.path.join(workdir, "baseline-%s-collections" % safe)
    link = os.path.join(coll, "ansible_collections", "zerodowntime", "rollout")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.islink(link) and os.readlink(link) != tree:
        os.unlink(link)
    if not os.path.islink(link):
        os.symlink(tree, link)
    return {
        "ref": ref,
        "commit": commit,
        "tree": tree,
        "collections_path": os.pathsep.join([coll, os.path.join(ROOT, ".cache", "deps")]),
    }


def role_readiness_defaults(root=ROOT):
    """(consecutive successes, interval) of the role's readiness wait, from its defaults."""
    try:
        with open(os.path.join(root, "roles", "rolling_update", "defaults", "main.yml")) as f:
            d = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        d = {}
    return int(d.get("rolling_update_health_consecutive_successes", 3)), float(
        d.get("rolling_update_health_interval", 0.5)
    )


# --------------------------------------------------------------------------- fleets


def fleet_up(workdir, name, hosts, args, first_address, startup_delay=None):
    d = os.path.join(workdir, name)
    if os.path.exists(os.path.join(d, "fleet.json")):
        try:
            Fleet.load(d).down(timeout=5)
        except FleetError as e:
            log("stale fleet in %s: %s", d, e)
    log("fleet %s: %d hosts from %s", name, hosts, first_address)
    t0 = time.monotonic()
    fleet = Fleet.up(
        d,
        hosts=hosts,
        version="v1",
        check_inter_ms=args.check_inter_ms,
        rise=args.rise,
        fall=args.fall,
        port=0,
        first_address=first_address,
        startup_delay=args.startup_delay if startup_delay is None else startup_delay,
        latency=args.latency,
        retries=args.retries,
        timeout=120.0,
    )
    _LIVE.append(fleet)
    log("fleet %s up in %.1fs", name, time.monotonic() - t0)
    return fleet


def fleet_down(fleet):
    try:
        fleet.down()
    finally:
        if fleet in _LIVE:
            _LIVE.remove(fleet)
    left = fleet.running_pids()
    if left:
        raise FleetError("processes left after down: %s" % left)


# --------------------------------------------------------------------------- ansible runs


def _kill_group(proc):
    """SIGTERM the process group of ``proc`` (ours: started with start_new_session), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give the rest of its group a moment, then make sure
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def run_ansible(playbook, inventory, extra_vars, out_prefix, forks=None, pipelining=False, env=None):
    """Run ansible-playbook with the timing callback (``env``: more environment, such as another
    ANSIBLE_COLLECTIONS_PATH). Returns wall time, CPU of the process tree (RUSAGE_CHILDREN delta: the
    apps that app-ctl detaches are not ours to wait for, so not counted) and the callback's records."""
    timings = out_prefix + ".timings.json"
    logfile = out_prefix + ".log"
    if os.path.exists(timings):
        os.unlink(timings)
    env_all = ansible_env(
        {
            "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timings",
            "BENCH_TIMINGS_FILE": timings,
            "ANSIBLE_PIPELINING": "1" if pipelining else "0",
            **(env or {}),
        }
    )
    if BYTECODE_CACHE:
        env_all.pop("PYTHONDONTWRITEBYTECODE", None)
        env_all["PYTHONPYCACHEPREFIX"] = BYTECODE_CACHE
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, playbook]
    cmd += ["-e", json.dumps(extra_vars)]
    if forks:
        cmd += ["--forks", str(forks)]
    load_before = os.getloadavg()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.time()
    t0 = time.monotonic()
    with open(logfile, "w") as out:
        # own process group: if the benchmark is interrupted, the whole ansible tree (workers, module
        # processes, app-ctl) is stopped before the fleet comes down, so nothing starts an app afterwards
        proc = subprocess.Popen(
            cmd, env=env_all, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with open(timings) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {"records": [], "plays": []}
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "launched": launched,
        "cpu_user_s": r1.ru_utime - r0.ru_utime,
        "cpu_sys_s": r1.ru_stime - r0.ru_stime,
        "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "max_child_rss_mb": r1.ru_maxrss / 1024.0,
        "log": os.path.relpath(logfile, ROOT),
        "timings": data,
        "pipelining": pipelining,
        "forks": forks,
        "collections_path": env_all["ANSIBLE_COLLECTIONS_PATH"],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def _known(names):
    return next((n for n in names if n in STEPS), OTHER)


def step_of(path, previous):
    """The step of a task without module-measured ``steps``, from the role file it comes from."""
    m = _ROLE_FILE.search(path or "")
    if not m:
        return OTHER
    rel = m.group(1)
    if rel in _INHERIT:
        return _known(("stabilize",)) if previous in ("ready", "enable", "stabilize") else _known(("preflight",))
    return _known(_FILE_STEP.get(rel, ()))


def analyse_records(run, hosts):
    """Per host (its own batch): window, time by step, tasks executed/skipped, the waits of drain,
    readiness and enable. A task whose result carries ``steps`` contributes the durations its module
    measured (the rest of its time is CALL_OVERHEAD); any other task is mapped by its role file.
    Plays that run every host at once (the playbook's preflight play) are reported as a whole."""
    data = run["timings"]
    recs = [r for r in data.get("records", []) if r.get("end") and r["host"] in hosts]
    recs.sort(key=lambda r: r["start"])
    plays = data.get("plays", [])
    hosts_in_play = {}
    for r in recs:
        hosts_in_play.setdefault(r.get("play", 0), set()).add(r["host"])
    # a play is "fleet-wide" when it holds every host and the run has other plays (batches)
    fleet_plays = {
        i for i, hs in hosts_in_play.items() if len(hs) == len(hosts) and len(hosts_in_play) > 1 and len(hosts) > 1
    }
    first_batch = min((i for i in hosts_in_play if i not in fleet_plays), default=None)
    shared = []
    for i in sorted(fleet_plays):
        mine = [r for r in recs if r.get("play") == i]
        per_host_tasks = len(mine) / len(hosts)
        shared.append(
            {
                "play": plays[i]["name"] if i < len(plays) else str(i),
                "before_batches": first_batch is None or i < first_batch,
                "wall_s": max(r["end"] for r in mine) - min(r["start"] for r in mine),
                "tasks_per_host": per_host_tasks,
                "tasks_executed_per_host": sum(1 for r in mine if r["status"] != "skipped") / len(hosts),
            }
        )
    per_host = {}
    for h in hosts:
        allmine = [r for r in recs if r["host"] == h]
        batched = [r for r in allmine if r.get("play") not in fleet_plays]
        if not batched:
            continue
        # The host's batch is the play in which its tasks took longest; its batches of later serial
        # plays (the playbook's revert play, skipped when nothing failed) are counted apart.
        busy_by_play = {}
        for r in batched:
            busy_by_play[r.get("play")] = busy_by_play.get(r.get("play"), 0.0) + (r["end"] - r["start"])
        batch = max(busy_by_play, key=busy_by_play.get)
        mine = [r for r in batched if r.get("play") == batch]
        later = [r for r in batched if r.get("play") != batch]
        steps = {}
        counts = {}
        prev = None
        busy = 0.0
        measured = 0
        waits = {"drain": 0.0, "ready": 0.0, "enable": 0.0}
        for r in mine:
            dur = r["end"] - r["start"]
            busy += dur
            mod_steps = r.get("steps") or []
            if mod_steps:  # the module timed its own steps
                measured += 1
                inside = 0.0
                for s in mod_steps:
                    steps[s["name"]] = steps.get(s["name"], 0.0) + s["seconds"]
                    inside += s["seconds"]
                    if s["name"] in waits:
                        waits[s["name"]] += s["seconds"]
                steps[CALL_OVERHEAD] = steps.get(CALL_OVERHEAD, 0.0) + max(0.0, dur - inside)
                st, prev = mod_steps[0]["name"], mod_steps[-1]["name"]
            else:
                st = step_of(r["path"], prev)
                prev = st if st != OTHER else prev
                steps[st] = steps.get(st, 0.0) + dur
                el = r.get("elapsed")
                el = sum(el) if isinstance(el, list) else (el or 0.0)
                if st in waits and r["action"].endswith(("haproxy_server", "http_health")) and r["status"] != "skipped":
                    waits[st] += el  # the role before the rewrite: the wait modules' elapsed
            r["step"] = st
            counts.setdefault(st, {"executed": 0, "skipped": 0})
            counts[st]["skipped" if r["status"] == "skipped" else "executed"] += 1
        start = min(r["start"] for r in mine)
        end = max(r["end"] for r in mine)
        per_host[h] = {
            "start": start,
            "end": end,
            "window_s": end - start,
            "in_tasks_s": busy,
            "between_tasks_s": (end - start) - busy,
            "steps_s": steps,
            "tasks": counts,
            "tasks_executed": sum(c["executed"] for c in counts.values()),
            "tasks_skipped": sum(c["skipped"] for c in counts.values()),
            "tasks_with_module_steps": measured,
            "other_batches_s": sum(r["end"] - r["start"] for r in later),
            "other_batches_tasks": len(later),
            "module_runs": sum(1 for r in mine if r["status"] != "skipped" and _is_module(r["action"])),
            "tasks_total_incl_fleet_plays": len(allmine),
            "tasks_executed_incl_fleet_plays": sum(1 for r in allmine if r["status"] != "skipped"),
            "waits_s": waits,
        }
    # cost of a task that does not wait, by outcome: median duration
    nowait = [
        r["end"] - r["start"]
        for r in recs
        if r["status"] != "skipped"
        and not r.get("steps")
        and not r["action"].endswith(("haproxy_server", "http_health", "wait_for", "command", "shell"))
    ]
    skipped = [r["end"] - r["start"] for r in recs if r["status"] == "skipped"]
    by_action = {}
    for r in recs:
        if r["status"] == "skipped":
            continue
        by_action.setdefault(r["action"], []).append(r["end"] - r["start"])
    first = min((r["start"] for r in recs), default=run["launched"])
    last = max((r["end"] for r in recs), default=run["launched"])
    return {
        "per_host": per_host,
        "startup_s": first - run["launched"],
        "shutdown_s": (run["launched"] + run["wall_s"]) - last,
        "median_task_s": statistics.median(nowait) if nowait else None,
        "median_skipped_task_s": statistics.median(skipped) if skipped else None,
        "task_s_by_action": {
            a: {"n": len(v), "median": statistics.median(v), "total": sum(v)} for a, v in sorted(by_action.items())
        },
        # serial batches that ran something (a later serial play whose tasks were all skipped, such
        # as the revert play after a success, is not counted)
        "batches": len({r.get("play") for r in recs if r.get("play") not in fleet_plays and r["status"] != "skipped"}),
        "plays": len(plays),
        "fleet_plays": shared,
        "records": len(recs),
    }


# Actions that run in the controller only (no module process on the host).
_CONTROLLER_ONLY = frozenset(
    (
        "assert",
        "set_fact",
        "debug",
        "fail",
        "meta",
        "include_tasks",
        "import_tasks",
        "include_role",
        "import_role",
        "include_vars",
        "validate_argument_spec",
        "pause",
        "set_stats",
        "add_host",
        "group_by",
        "end_play",
        "end_host",
        "end_batch",
    )
)


def _is_module(action):
    return action.rsplit(".", 1)[-1] not in _CONTROLLER_ONLY


# --------------------------------------------------------------------------- the app's own floor


def probe_app(workdir, fleet, artifact, repeat):
    """Start-to-ready and stop time of one app outside any LB: run the real start command, poll
    /health every 5 ms until 200; then the stop command. Median of ``repeat`` tries."""
    dp = os.path.join(workdir, "probe", "app")
    shutil.rmtree(os.path.dirname(dp), ignore_errors=True)
    install_release(dp, artifact, "v2")
    addr = "127.0.0.250"
    port = free_port((addr,))
    python = fleet.data["python"]
    start = [python, APP_CTL, "start", dp, addr, str(port), "--"] + list(fleet.data["app_args"])
    stop = [python, APP_CTL, "stop", dp, addr, str(port), "--timeout", "35"]
    url = "http://%s:%d/health" % (addr, port)
    tries = []
    try:
        for _ in range(repeat):
            t0 = time.monotonic()
            subprocess.run(start, check=True, capture_output=True)
            listening = time.monotonic() - t0
            deadline = t0 + 60
            while http_get(url, timeout=1)[0] != 200:
                if time.monotonic() > deadline:
                    raise FleetError("probe app never became ready")
                time.sleep(0.005)
            ready = time.monotonic() - t0
            t1 = time.monotonic()
            subprocess.run(stop, check=True, capture_output=True)
            stopped = time.monotonic() - t1
            tries.append({"listening_s": listening, "ready_s": ready, "stop_s": stopped})
            time.sleep(0.2)
    finally:
        subprocess.run(stop, check=False, capture_output=True)
    return {
        "tries": tries,
        "start_to_ready_s": statistics.median(t["ready_s"] for t in tries),
        "start_to_listening_s": statistics.median(t["listening_s"] for t in tries),
        "stop_s": statistics.median(t["stop_s"] for t in tries),
    }


# --------------------------------------------------------------------------- the per-task cost


def scenario_task_cost(workdir, n, pipelining):
    """The fixed cost of one task on this machine: a play of ``n`` ansible.builtin.stat tasks (a
    module run through AnsiballZ, local connection) and ``n`` ansible.builtin.assert tasks (run in
    the controller only) on one host."""
    pb = os.path.join(workdir, "task_cost.yml")
    tasks = ["    - name: Stat %d\n      ansible.builtin.stat:\n        path: /\n" % i for i in range(n)]
    tasks += [
        "    - name: Assert %d\n      ansible.builtin.assert:\n        that: true\n        quiet: true\n" % i
        for i in range(n)
    ]
    with open(pb, "w") as f:
        f.write("---\n- name: Task cost\n  hosts: localhost\n  gather_facts: false\n  tasks:\n" + "".join(tasks))
    inv = os.path.join(workdir, "task_cost.inventory.yml")
    with open(inv, "w") as f:
        json.dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                    }
                }
            },
            f,
        )
    run = run_ansible(pb, inv, {}, os.path.join(workdir, "task_cost-pipe%d" % pipelining), pipelining=pipelining)
    recs = [r for r in run["timings"].get("records", []) if r.get("end")]
    by = {}
    for r in recs:
        by.setdefault(r["action"], []).append(r["end"] - r["start"])
    first = min((r["start"] for r in recs), default=run["launched"])
    last = max((r["end"] for r in recs), default=run["launched"])
    del run["timings"]
    run.update(
        {
            "tasks": n,
            "startup_s": first - run["launched"],
            "module_task_s": statistics.median(by.get("ansible.builtin.stat", [0])),
            "controller_task_s": statistics.median(by.get("ansible.builtin.assert", [0])),
            "tasks_window_s": last - first,
            "cpu_per_task_s": run["cpu_s"] / (2 * n),
        }
    )
    return run


# --------------------------------------------------------------------------- scenarios


def _artifact(fleet, version):
    path, sha = build_artifact(version, os.path.join(fleet.dir, "artifacts"))
    return path, sha


def under_load(fleet, rate, fn, path="/version"):
    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"], interval=0.1).start()
    load = LoadGenerator(fleet.data["frontend_url"] + path, rate=rate).start() if rate else None
    try:
        time.sleep(1.0)  # a second of steady traffic before the rollout (pacing, not a wait)
        result = fn()
        time.sleep(1.0)
    finally:
        summary = load.stop() if load else None
        sampler.stop()
    ld = None
    if summary is not None:
        d = summary.to_dict()
        ld = {k: d[k] for k in ("total", "failed", "rate", "p50_ms", "p99_ms", "max_ms", "outcomes", "versions")}
        ld["failures"] = [
            {"offset_s": round(r.offset, 3), "outcome": r.outcome, "latency_s": round(r.latency, 3)}
            for r in summary.failures[:50]
        ]
    result["load"] = ld
    result["out_of_rotation_s"] = sampler.out_of_rotation_seconds()
    result["max_out_of_rotation"] = sampler.max_out_of_rotation()
    result["versions_after"] = {h["name"]: fleet_version(h) for h in fleet.data["hosts"]}
    result["all_on_v2"] = set(result["versions_after"].values()) == {"v2"}
    return result


def _ours_extra(fleet, artifact, sha, serial):
    """The playbook's inputs: what to deploy and the batch size, nothing tuned. The lock file goes into
    the fleet's directory so that the benchmark never meets another rollout's lock on this machine."""
    return {
        "rolling_update_version": "v2",
        "rolling_update_artifact": artifact,
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rollout_serial": serial,
        "rollout_lock_path": os.path.join(fleet.dir, "rollout.lock"),
    }


def app_probe(workdir, fleet, artifact, args, startup_delay):
    """The app's start-to-ready and graceful stop on this machine, measured once per app setting."""
    key = (startup_delay, args.latency)
    if key not in _PROBES:
        repeat = args.probe_repeat if startup_delay <= 1.0 else min(2, args.probe_repeat)  # slow start: fewer
        log("probing the app's start-to-ready and stop (%d tries)", repeat)
        _PROBES[key] = probe_app(workdir, fleet, artifact, repeat)
    return _PROBES[key]


def floors_for(an, probe, args, max_req_s):
    """The physical floor of each host: in-flight requests finishing during the drain, the app's
    graceful stop, its start-to-ready (warm-up included), then the longer of the readiness tail (the
    role's further consecutive successes) and HAProxy's rise x inter (both run at once)."""
    successes, interval = role_readiness_defaults()
    tail = max(0, successes - 1) * interval
    detection = args.rise * args.check_inter_ms / 1000.0
    floors = {}
    for h, ph in an["per_host"].items():
        drain = ph["waits_s"]["drain"]
        inflight = min(drain, max_req_s)
        floor = inflight + probe["stop_s"] + probe["start_to_ready_s"] + max(tail, detection)
        floors[h] = {
            "drain_wait_s": drain,
            "inflight_s": inflight,
            "stop_s": probe["stop_s"],
            "start_to_ready_s": probe["start_to_ready_s"],
            "readiness_tail_s": tail,
            "readiness_successes": successes,
            "readiness_interval_s": interval,
            "detection_s": detection,
            "floor_s": floor,
            "window_s": ph["window_s"],
            "window_over_floor_s": ph["window_s"] - floor,
        }
    return floors


def scenario_ours(workdir, name, args, first_address, pipelining=False, startup_delay=None, path=None):
    startup_delay = args.startup_delay if startup_delay is None else startup_delay
    path = path or args.path
    fleet = fleet_up(workdir, name, args.hosts, args, first_address, startup_delay)
    try:
        artifact, sha = _artifact(fleet, "v2")
        probe = app_probe(workdir, fleet, artifact, args, startup_delay)
        inv = write_inventory(fleet, os.path.join(fleet.dir, "inventory.yml"))
        extra = _ours_extra(fleet, artifact, sha, 1)
        log("%s: playbook v1 -> v2, serial 1, %s req/s on %s, pipelining=%s", name, args.rate, path, pipelining)
        res = under_load(
            fleet,
            args.rate,
            lambda: run_ansible(PLAYBOOK, inv, extra, os.path.join(workdir, name), pipelining=pipelining),
            path,
        )
        fleet_down(fleet)
    except BaseException:
        if fleet in _LIVE:
            fleet_down(fleet)
        raise
    hosts = [h["name"] for h in fleet.data["hosts"]]
    an = analyse_records(res, hosts)
    max_req = ((res["load"] or {}).get("max_ms") or 0.0) / 1000.0
    floors = floors_for(an, probe, args, max_req)
    n = len(hosts)
    sum_floor = sum(f["floor_s"] for f in floors.values())
    over = [f["window_over_floor_s"] for f in floors.values()]
    res.update(
        {
            "scenario": name,
            "kind": "ours",
            "hosts": n,
            "analysis": an,
            "floors": floors,
            "floor_per_host_s": sum_floor / n if floors else None,
            # the whole playbook (start-up, preflight, lock, every host, report) above the sum of the floors
            "overhead_per_host_s": (res["wall_s"] - sum_floor) / n if floors else None,
            # the serial phase only: a host's window above its floor, median over hosts
            "window_overhead_per_host_s": statistics.median(over) if over else None,
            "preflight_s": sum(fp["wall_s"] for fp in an["fleet_plays"] if fp.get("before_batches", True)),
            "cpu_per_host_s": res["cpu_s"] / n,
            "wall_per_host_s": res["wall_s"] / n,
            "tasks_per_host": statistics.mean(p["tasks_total_incl_fleet_plays"] for p in an["per_host"].values())
            if an["per_host"]
            else None,
            "target_overhead_s": 1.0,
        }
    )
    res["target_met"] = res["overhead_per_host_s"] is not None and res["overhead_per_host_s"] <= 1.0
    res["app_probe"] = probe
    res["load_path"] = path
    res["startup_delay"] = startup_delay
    del res["timings"]
    return res


def scenario_classic(workdir, name, args, first_address, startup_delay=None, path=None, kind="classic"):
    """bench/classic.yml (kind classic), bench/classic_cg.yml (classic_cg) or bench/classic_ready.yml
    (classic_ready) under the same load."""
    startup_delay = args.startup_delay if startup_delay is None else startup_delay
    path = path or args.path
    env = None
    playbook = CLASSIC_READY if kind == "classic_ready" else CLASSIC
    if kind == "classic_cg":
        playbook = CLASSIC_CG
        cg_root = ensure_community_general()  # before the fleet: a missing wheel fails at once
        env = {"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([ansible_env()["ANSIBLE_COLLECTIONS_PATH"], cg_root])}
    fleet = fleet_up(workdir, name, args.hosts, args, first_address, startup_delay)
    try:
        artifact, _sha = _artifact(fleet, "v2")
        inv = write_inventory(fleet, os.path.join(fleet.dir, "inventory.yml"))
        extra = {"classic_version": "v2", "classic_artifact": artifact, "rollout_serial": 1}
        if kind == "classic_cg":
            extra["classic_wait_interval"] = args.cg_wait_interval
        log("%s: %s v1 -> v2, serial 1, %s req/s on %s", name, os.path.relpath(playbook, ROOT), args.rate, path)
        res = under_load(
            fleet, args.rate, lambda: run_ansible(playbook, inv, extra, os.path.join(workdir, name), env=env), path
        )
        fleet_down(fleet)
    except BaseException:
        if fleet in _LIVE:
            fleet_down(fleet)
        raise
    hosts = [h["name"] for h in fleet.data["hosts"]]
    recs = [r for r in res["timings"].get("records", []) if r.get("end") and r["host"] in hosts]
    per_task = {}
    for r in recs:
        per_task.setdefault(r["task"], []).append(r["end"] - r["start"])
    res.update(
        {
            "scenario": name,
            "kind": kind,
            "playbook": os.path.relpath(playbook, ROOT),
            "load_path": path,
            "startup_delay": startup_delay,
            "hosts": len(hosts),
            "tasks_per_host": len(recs) / max(1, len(hosts)),
            "task_s": {t: {"n": len(v), "median": statistics.median(v)} for t, v in per_task.items()},
            "wall_per_host_s": res["wall_s"] / len(hosts),
            "cpu_per_host_s": res["cpu_s"] / len(hosts),
        }
    )
    if kind == "classic_cg":
        res["community_general"] = _cg_version()
        res["cg_wait_interval"] = args.cg_wait_interval
    del res["timings"]
    return res


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) / 1024.0
    return out


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def scenario_scale(workdir, hosts, args, first_address, baseline=None):
    """The playbook on ``hosts`` hosts in 10 batches; with ``baseline`` (from ensure_baseline) the
    playbook and collection of that commit instead of the current tree's."""
    name = "scale%d" % hosts + ("-baseline" if baseline else "")
    env = {"ANSIBLE_COLLECTIONS_PATH": baseline["collections_path"]} if baseline else None
    avail0 = meminfo()["MemAvailable"]
    fleet = fleet_up(workdir, name, hosts, args, first_address)
    try:
        pids = fleet.running_pids()
        app_rss = [rss_mb(p) for k, p in pids.items() if not k.startswith("haproxy")]
        mem = {
            "app_processes": len(app_rss),
            "app_rss_total_mb": sum(app_rss),
            "app_rss_mean_mb": statistics.mean(app_rss) if app_rss else 0.0,
            "haproxy_rss_mb": sum(rss_mb(p) for k, p in pids.items() if k.startswith("haproxy")),
            "mem_available_before_mb": avail0,
            "mem_available_after_up_mb": meminfo()["MemAvailable"],
            "mem_total_mb": meminfo()["MemTotal"],
        }
        artifact, sha = _artifact(fleet, "v2")
        inv = write_inventory(fleet, os.path.join(fleet.dir, "inventory.yml"))
        extra = _ours_extra(fleet, artifact, sha, "10%")
        log(
            "%s: playbook (%s) v1 -> v2, serial 10%%, forks %d, %s req/s",
            name,
            "baseline %s" % baseline["ref"] if baseline else "current tree",
            args.forks,
            args.scale_rate,
        )
        res = under_load(
            fleet,
            args.scale_rate,
            lambda: run_ansible(PLAYBOOK, inv, extra, os.path.join(workdir, name), forks=args.forks, env=env),
        )
        mem["mem_available_min_after_run_mb"] = meminfo()["MemAvailable"]
        fleet_down(fleet)
    except BaseException:
        if fleet in _LIVE:
            fleet_down(fleet)
        raise
    names = [h["name"] for h in fleet.data["hosts"]]
    an = analyse_records(res, names)
    per_host = an.pop("per_host")
    executed = [p["tasks_executed_incl_fleet_plays"] for p in per_host.values()]
    skipped = [p["tasks_total_incl_fleet_plays"] - p["tasks_executed_incl_fleet_plays"] for p in per_host.values()]
    res.update(
        {
            "scenario": name,
            "tree": "baseline" if baseline else "current",
            "ref": baseline["ref"] if baseline else None,
            "commit": baseline["commit"] if baseline else None,
            "hosts": hosts,
            "analysis": an,
            "batches": an["batches"],
            "wall_per_host_s": res["wall_s"] / hosts,
            "cpu_per_host_s": res["cpu_s"] / hosts,
            "tasks_executed_per_host": statistics.mean(executed) if executed else None,
            "tasks_skipped_per_host": statistics.mean(skipped) if skipped else None,
            "memory": mem,
        }
    )
    del res["timings"]
    return res


# --------------------------------------------------------------------------- report


def code_version():
    """Which role was measured: HEAD, and the files of the role/playbook/plugins that differ from it
    (read-only git commands), plus a digest of their current contents."""
    import hashlib

    def git(*argv):
        p = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return p.stdout.rstrip()

    digest = hashlib.sha256()
    for top in ("roles", "playbooks", "plugins"):
        for dirpath, dirnames, filenames in sorted(os.walk(os.path.join(ROOT, top))):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith((".yml", ".py")):
                    path = os.path.join(dirpath, fn)
                    digest.update(os.path.relpath(path, ROOT).encode())
                    with open(path, "rb") as f:
                        digest.update(f.read())
    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--short", "--", "roles", "playbooks", "plugins").splitlines(),
        "sha256_roles_playbooks_plugins": digest.hexdigest()[:16],
    }


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import ansible.release

    hv = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gb": round(meminfo()["MemTotal"] / 1024.0, 1),
        "python": platform.python_version(),
        "ansible_core": ansible.release.__version__,
        "haproxy": hv[0] if hv else "?",
        "kernel": platform.release(),
    }


def fmt(v, nd=2):
    return "-" if v is None else ("%.*f" % (nd, v))


def _row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cells):
    return _row(*cells) + "\n" + _row(*["---"] * len(cells))


def _load(r):
    return "%.1f→%.1f" % (r["loadavg_before"][0], r["loadavg_after"][0])


def _variant(r):
    return "pipelining on" if r["pipelining"] else "pipelining off"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def headline_summary(hl):
    """Medians over the rounds that succeeded, failures over all rounds, the ratio and the overhead."""
    out = {}
    for kind in HEADLINE:
        runs = hl["runs"].get(kind, [])
        ok = [r for r in runs if r.get("rc") == 0]
        loads = [r["load"] for r in runs if r.get("load")]
        out[kind] = {
            "runs": len(runs),
            "ok": len(ok),
            "errors": sum(1 for e in hl.get("errors", []) if e["kind"] == kind),
            "wall_s_median": _median(r["wall_s"] for r in ok),
            "walls_s": [round(r["wall_s"], 2) for r in runs],
            "failed": sum(ld["failed"] for ld in loads),
            "sent": sum(ld["total"] for ld in loads),
            "cpu_per_host_s_median": _median(r.get("cpu_per_host_s") for r in ok),
        }
    classics = [(out[k]["wall_s_median"], k) for k in RATIO_CLASSICS if out[k]["wall_s_median"]]
    faster = min(classics)[1] if classics else None
    ours = out["ours"]
    ok_ours = [r for r in hl["runs"].get("ours", []) if r.get("rc") == 0]
    s = {
        "by_kind": out,
        "faster_classic": faster,
        "ratio": ours["wall_s_median"] / out[faster]["wall_s_median"] if faster and ours["wall_s_median"] else None,
        "ratio_vs_classic_ready": (
            ours["wall_s_median"] / out["classic_ready"]["wall_s_median"]
            if ours["wall_s_median"] and out["classic_ready"]["wall_s_median"]
            else None
        ),
        "overhead_per_host_s": _median(r.get("overhead_per_host_s") for r in ok_ours),
        "window_overhead_per_host_s": _median(r.get("window_overhead_per_host_s") for r in ok_ours),
        "floor_per_host_s": _median(r.get("floor_per_host_s") for r in ok_ours),
        "preflight_s": _median(r.get("preflight_s") for r in ok_ours),
        "targets": {"ratio": 1.0, "failed": 0, "overhead_per_host_s": 1.0, "preflight_s": 2.0},
    }
    s["ratio_met"] = (
        s["ratio"] is not None
        and s["ratio"] <= 1.0
        and ours["failed"] == 0
        and ours["ok"] == ours["runs"]
        and not ours["errors"]
    )
    s["overhead_met"] = s["overhead_per_host_s"] is not None and s["overhead_per_host_s"] <= 1.0
    return s


def baseline_summary(scale):
    """Controller CPU per host, current tree vs baseline, per host count."""
    out = {}
    for r in scale:
        if r.get("rc") == 0:
            out.setdefault(str(r["hosts"]), {})[r.get("tree", "current")] = r["cpu_per_host_s"]
    for v in out.values():
        if v.get("current") and v.get("baseline"):
            v["ratio"] = v["current"] / v["baseline"]
            v["target_ratio"] = 1.0 / 3.0
    return out


def _met(ok):
    return "met" if ok else "not met"


def _loadline(res):
    a, b = res.get("loadavg_start"), res.get("loadavg_end")
    if not a:
        return None
    return "Machine load average (1/5/15 min): %s at the start, %s at the end (%s cores)." % (
        "/".join("%.2f" % x for x in a),
        "/".join("%.2f" % x for x in b) if b else "?",
        res.get("machine", {}).get("cores", "?"),
    )


def _headline_tables(res):
    hl = res.get("headline")
    if not hl or not any(hl["runs"].values()):
        return []
    cfg = hl["config"]
    s = hl.get("summary") or headline_summary(hl)
    out = [
        "### Headline: classic pattern vs ours; %d hosts, serial 1, %s req/s on %s; HAProxy check inter %dms "
        "rise %d fall %d, retries %d; app start-up delay %ss; %d round(s), interleaved, medians of the rounds "
        "that succeeded\n"
        % (
            cfg["hosts"],
            cfg["rate"],
            cfg["path"],
            cfg["check_inter_ms"],
            cfg["rise"],
            cfg["fall"],
            cfg["retries"],
            cfg["startup_delay"],
            cfg["rounds"],
        ),
        _head(
            "run",
            "rc=0 / runs",
            "wall (s), median",
            "wall per round (s)",
            "failed requests, all rounds",
            "failed / sent per round",
            "CPU/host (s), median",
            "load 1m per round",
        ),
    ]
    for kind in HEADLINE:
        runs = hl["runs"].get(kind, [])
        k = s["by_kind"].get(kind)  # None in the results of a run before that variant existed
        if k is None or (not runs and not k["errors"]):
            continue
        out.append(
            _row(
                LABELS[kind],
                "%d / %d" % (k["ok"], k["runs"] + k["errors"]),
                "**%s**" % fmt(k["wall_s_median"], 1),
                ", ".join("%s%s" % (fmt(r["wall_s"], 1), "" if r["rc"] == 0 else " (rc %d)" % r["rc"]) for r in runs),
                "**%d**" % k["failed"],
                ", ".join(
                    "%d / %d" % (r["load"]["failed"], r["load"]["total"]) if r.get("load") else "-" for r in runs
                ),
                fmt(k["cpu_per_host_s_median"]),
                ", ".join(_load(r) for r in runs),
            )
        )
    ours = s["by_kind"]["ours"]
    if s["ratio"] is not None:
        out.append(
            "\n**ours / faster classic (%s) = %.2f** (target ≤ 1.0 with 0 failed requests: %s); failed requests: "
            "ours %d, classic %d, classic_cg %d."
            % (
                s["faster_classic"],
                s["ratio"],
                _met(s["ratio_met"]),
                ours["failed"],
                s["by_kind"]["classic"]["failed"],
                s["by_kind"]["classic_cg"]["failed"],
            )
        )
    else:
        out.append(
            "\n**ours / faster classic: -** (needs a successful run of ours and of a classic variant); "
            "failed requests: ours %d, classic %d, classic_cg %d."
            % (ours["failed"], s["by_kind"]["classic"]["failed"], s["by_kind"]["classic_cg"]["failed"])
        )
    ready = s["by_kind"].get("classic_ready")
    if ready and s.get("ratio_vs_classic_ready") is not None:
        out.append(
            "**ours / classic_ready = %.2f** (the classic pattern that waits for readiness too, not the issue's "
            "measure); failed requests: classic_ready %d." % (s["ratio_vs_classic_ready"], ready["failed"])
        )
    if s["overhead_per_host_s"] is not None:
        ok_ours = [r for r in hl["runs"].get("ours", []) if r.get("rc") == 0]
        f = next(iter(ok_ours[0]["floors"].values()), None) if ok_ours else None
        parts = (
            " = in-flight %s + graceful stop %s + start→ready (warm-up included) %s + max(readiness tail "
            "%d×%ss, HAProxy rise×inter %s)"
            % (
                fmt(f["inflight_s"]),
                fmt(f["stop_s"]),
                fmt(f["start_to_ready_s"]),
                f["readiness_successes"] - 1,
                f["readiness_interval_s"],
                fmt(f["detection_s"]),
            )
            if f
            else ""
        )
        out.append(
            "**Overhead per host above the physical floor: %s s** (whole playbook: (wall − Σ floors) / hosts, "
            "median; target ≤ 1.0 s: %s); a host's window above its floor: %s s; floor per host %s s%s; "
            "preflight (all hosts at once) %s s (target ≤ 2 s)."
            % (
                fmt(s["overhead_per_host_s"]),
                _met(s["overhead_met"]),
                fmt(s["window_overhead_per_host_s"]),
                fmt(s["floor_per_host_s"]),
                parts,
                fmt(s["preflight_s"]),
            )
        )
    for e in hl.get("errors", []):
        out.append("\nRound %d, %s did not run to the end: %s" % (e["round"], e["kind"], e["error"]))
    return out


def _ours_tables(res, ours):
    out = []
    cfg = res["config"]
    out.append("\n### Ours in detail: rolling_update, %d hosts, serial 1, %s req/s\n" % (ours[0]["hosts"], cfg["rate"]))
    out.append(
        _head(
            "run",
            "rc",
            "wall (s)",
            "failed / sent",
            "Σ floors (s)",
            "overhead/host (s)",
            "window − floor (s)",
            "preflight (s)",
            "CPU/host (s)",
            "load 1m",
        )
    )
    for r in ours:
        out.append(
            _row(
                "%s, %s" % (r.get("scenario", "?"), _variant(r)),
                r["rc"],
                fmt(r["wall_s"], 1),
                "%d / %d" % (r["load"]["failed"], r["load"]["total"]) if r.get("load") else "-",
                fmt(sum(f.get("floor_s", 0.0) for f in r.get("floors", {}).values())),
                "**%s**" % fmt(r.get("overhead_per_host_s")),
                fmt(r.get("window_overhead_per_host_s")),
                fmt(r.get("preflight_s")),
                fmt(r.get("cpu_per_host_s")),
                _load(r),
            )
        )
    for r in ours:
        an = r["analysis"]
        seen = set()
        for ph in an["per_host"].values():
            seen.update(k for k, v in ph["steps_s"].items() if v)
        cols = [c for c in STEPS if c in seen] + sorted(seen - set(STEPS) - {OTHER, CALL_OVERHEAD})
        cols += [c for c in (CALL_OVERHEAD, OTHER) if c in seen]
        out.append(
            "\nPer host by step, %s (seconds; steps the modules measured where they report them):\n" % r["scenario"]
        )
        out.append(_head("host", *cols, "between tasks", "window", "tasks run / skipped", "module runs"))
        for h, ph in an["per_host"].items():
            out.append(
                _row(
                    h,
                    *[fmt(ph["steps_s"].get(c)) for c in cols],
                    fmt(ph["between_tasks_s"]),
                    fmt(ph["window_s"]),
                    "%d / %d" % (ph["tasks_executed"], ph["tasks_skipped"]),
                    ph.get("module_runs", "-"),
                )
            )
        for fp in an["fleet_plays"]:
            out.append(
                "\n%s the batches, the play '%s' ran on all hosts at once: %.2f s, %.0f tasks per host "
                "(%.0f executed)."
                % (
                    "Before" if fp.get("before_batches", True) else "After",
                    fp["play"],
                    fp["wall_s"],
                    fp["tasks_per_host"],
                    fp["tasks_executed_per_host"],
                )
            )
        later = [ph.get("other_batches_s", 0.0) for ph in an["per_host"].values()]
        if any(later):
            out.append(
                "\nLater serial plays (batches of one host each, such as the revert play): %.2f s per host, "
                "median; not in the window above." % statistics.median(later)
            )
        out.append(
            "\nansible-playbook start-up before the first task %.2f s, after the last task %.2f s; "
            "median non-waiting module task %s s, median skipped task %s s."
            % (an["startup_s"], an["shutdown_s"], fmt(an["median_task_s"], 3), fmt(an["median_skipped_task_s"], 3))
        )
    r = ours[0]
    if r.get("floors"):
        out.append("\nFloor per host, %s (seconds):\n" % r.get("scenario", _variant(r)))
        out.append(
            _head(
                "host",
                "drain wait",
                "in flight",
                "graceful stop",
                "start→ready",
                "readiness tail",
                "rise×inter",
                "floor",
                "window",
                "window − floor",
            )
        )
        for h, f in r["floors"].items():
            out.append(
                _row(
                    h,
                    fmt(f.get("drain_wait_s", f.get("drain_elapsed_s")), 3),
                    fmt(f.get("inflight_s"), 3),
                    fmt(f.get("stop_s"), 3),
                    fmt(f.get("start_to_ready_s"), 3),
                    fmt(f.get("readiness_tail_s"), 3),
                    fmt(f.get("detection_s"), 3),
                    fmt(f.get("floor_s"), 3),
                    fmt(f.get("window_s"), 3),
                    fmt(f.get("window_over_floor_s"), 3),
                )
            )
    return out


def tables(res):
    """Markdown tables of the results (pasted into docs/performance.md)."""
    out = []
    cfg = res["config"]
    line = _loadline(res)
    if line:
        out.append(line + "\n")
    out += _headline_tables(res)
    tc = res.get("task_cost", [])
    if tc:
        out.append(
            "\n### Fixed cost of one task (%d stat + %d assert tasks, one local host)\n"
            % (tc[0]["tasks"], tc[0]["tasks"])
        )
        out.append(
            _head("variant", "start-up (s)", "module task (s)", "controller task (s)", "CPU/task (s)", "load 1m")
        )
        for r in tc:
            out.append(
                _row(
                    _variant(r),
                    fmt(r["startup_s"]),
                    fmt(r["module_task_s"], 3),
                    fmt(r["controller_task_s"], 3),
                    fmt(r["cpu_per_task_s"], 3),
                    _load(r),
                )
            )
    hl = res.get("headline") or {}
    ours = list(hl.get("runs", {}).get("ours", [])) + list(res.get("ours_pipelining", [])) + list(res.get("ours", []))
    ours = [r for r in ours if r.get("analysis")]
    if ours:
        out += _ours_tables(res, ours)
    pairs = []
    if isinstance(res.get("classic"), dict):  # the JSON of the benchmark before the headline (issue 12)
        pairs.append(("Classic (bench/classic.yml) vs ours", ours[:1] + [res["classic"]]))
    if res.get("warmup"):
        w = res["warmup"]
        pairs.append(
            ("Readiness pair: app warms up for %ss (503 until then), load on /health" % w[0]["startup_delay"], w)
        )
    for title, runs in pairs:
        out.append("\n### %s; %d hosts, serial 1, %s req/s\n" % (title, runs[-1]["hosts"], cfg["rate"]))
        out.append(
            _head(
                "playbook",
                "rc",
                "wall (s)",
                "wall/host (s)",
                "tasks/host",
                "CPU/host (s)",
                "failed / sent",
                "outcomes",
                "load 1m",
            )
        )
        for r in runs:
            if "analysis" in r:
                per_host = list(r["analysis"]["per_host"].values())
                tph = r.get("tasks_per_host")
                if tph is None and per_host:  # the JSON of the benchmark before the headline
                    tph = statistics.mean(p["tasks_total_incl_fleet_plays"] for p in per_host)
                label = "ours (%s)" % _variant(r)
            else:
                tph, label = r["tasks_per_host"], r.get("kind", "classic")
            out.append(
                _row(
                    label,
                    r["rc"],
                    fmt(r["wall_s"], 1),
                    fmt(r["wall_s"] / r["hosts"]),
                    fmt(tph, 1),
                    fmt(r["cpu_s"] / r["hosts"]),
                    "%d / %d" % (r["load"]["failed"], r["load"]["total"]),
                    ", ".join("%s=%d" % kv for kv in sorted(r["load"]["outcomes"].items())),
                    _load(r),
                )
            )
    sc = res.get("scale", [])
    if sc:
        out.append("\n### Scale: serial 10%%, forks %d, %s req/s\n" % (cfg["forks"], cfg["scale_rate"]))
        out.append(
            _head(
                "hosts",
                "tree",
                "rc",
                "batches",
                "wall (s)",
                "wall/host (s)",
                "CPU (s)",
                "CPU/host (s)",
                "tasks/host run + skipped",
                "failed / sent",
                "all on v2",
                "load 1m",
            )
        )
        for r in sc:
            out.append(
                _row(
                    r["hosts"],
                    "baseline %s" % r["ref"] if r.get("tree") == "baseline" else "current",
                    r["rc"],
                    r["batches"],
                    fmt(r["wall_s"], 1),
                    fmt(r["wall_per_host_s"]),
                    fmt(r["cpu_s"], 1),
                    "**%s**" % fmt(r["cpu_per_host_s"]),
                    "%s + %s" % (fmt(r["tasks_executed_per_host"], 1), fmt(r["tasks_skipped_per_host"], 1)),
                    "%d / %d" % (r["load"]["failed"], r["load"]["total"]) if r["load"] else "-",
                    r["all_on_v2"],
                    _load(r),
                )
            )
        cur = [r for r in sc if r.get("tree", "current") == "current"]
        if len(cur) >= 2:
            a, b = cur[0]["cpu_per_host_s"], cur[-1]["cpu_per_host_s"]
            out.append(
                "\nCPU per host, %d vs %d hosts: %+.0f%% (target: within 20%%)."
                % (cur[0]["hosts"], cur[-1]["hosts"], 100.0 * (b - a) / a)
            )
        bl = res.get("baseline") or {}
        for n, v in sorted((bl.get("cpu_per_host_s") or {}).items(), key=lambda kv: int(kv[0])):
            if "ratio" in v:
                out.append(
                    "\n**Controller CPU per host at %s hosts: current %.2f s, baseline %s %.2f s, ratio %.2f** "
                    "(target at 100 hosts: ≤ 0.33%s)."
                    % (
                        n,
                        v["current"],
                        bl["ref"],
                        v["baseline"],
                        v["ratio"],
                        (": " + _met(v["ratio"] <= 1.0 / 3.0)) if n == "100" else "",
                    )
                )
        for r in sc:
            m = r["memory"]
            out.append(
                "\nMemory, %d hosts (%s): %d app processes, %.0f MB RSS in total (%.1f MB each), HAProxy %.0f MB; "
                "MemAvailable %.0f MB before the fleet, %.0f MB with it up (of %.0f MB)."
                % (
                    r["hosts"],
                    r.get("tree", "current"),
                    m["app_processes"],
                    m["app_rss_total_mb"],
                    m["app_rss_mean_mb"],
                    m["haproxy_rss_mb"],
                    m["mem_available_before_mb"],
                    m["mem_available_after_up_mb"],
                    m["mem_total_mb"],
                )
            )
    for e in res.get("errors", []):
        out.append("\nError: %s" % e)
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    g = p.add_argument_group("headline (classic, classic_cg, ours) and the fleet")
    g.add_argument("--rounds", type=int, default=2, help="interleaved rounds of classic, classic_cg, ours (2)")
    g.add_argument("--hosts", type=int, default=4, help="app hosts (4)")
    g.add_argument("--rate", type=float, default=150.0, help="req/s through HAProxy (150)")
    g.add_argument("--path", default="/health", help="the path the load requests (/health: 503 while warming up)")
    g.add_argument("--check-inter-ms", type=int, default=500, help="HAProxy check interval (500)")
    g.add_argument("--rise", type=int, default=2)
    g.add_argument("--fall", type=int, default=2)
    g.add_argument("--retries", type=int, default=0, help="HAProxy retries (0: a failed request is not replayed)")
    g.add_argument("--startup-delay", type=float, default=1.0, help="app: seconds of 503 on /health after a start (1)")
    g.add_argument("--latency", type=float, default=0.0, help="app: seconds added to every request")
    g.add_argument(
        "--cg-wait-interval",
        type=int,
        default=1,
        help="classic_cg: community.general.haproxy wait_interval (an integer; 1, its smallest, is the fastest)",
    )
    g.add_argument("--probe-repeat", type=int, default=5, help="tries of the app's start-to-ready probe")
    g.add_argument(
        "--pipelining", action="store_true", help="also run ours once with ANSIBLE_PIPELINING=1 (not in the headline)"
    )
    g = p.add_argument_group("other scenarios")
    g.add_argument("--scale", default="10,100", help="host counts for the scale runs ('' to skip)")
    g.add_argument("--scale-rate", type=float, default=20.0, help="light load during the scale runs (0: none)")
    g.add_argument("--forks", type=int, default=10, help="--forks for the scale runs (>= the batch size)")
    g.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="also run each scale run with REF's playbook and collection (git worktree in WORKDIR/baseline-REF)",
    )
    g.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="app start-up delay for the readiness pair (ours vs classic, load on /health); 0 to skip",
    )
    g.add_argument("--no-pipelining", action="store_true", help="task_cost: skip the ANSIBLE_PIPELINING=1 variant")
    g.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run ansible-playbook with the calling environment's bytecode settings (default: a cache in "
        "WORKDIR/pycache for every variant, as on a controller after its first run)",
    )
    p.add_argument("--skip", default="", help="comma list of %s to skip" % ",".join(SCENARIOS))
    p.add_argument("--workdir", default=os.path.join(HERE, "out"))
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "performance.json"))
    p.add_argument("--tables", default=None, help="write the markdown tables here too (default: workdir/tables.md)")
    p.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's JSON")
    a = p.parse_args(argv)
    if a.report:
        with open(a.report) as f:
            sys.stdout.write(tables(json.load(f)))
        return 0
    global BYTECODE_CACHE
    BYTECODE_CACHE = None if a.no_bytecode_cache else os.path.join(os.path.abspath(a.workdir), "pycache")
    skip = {s for s in a.skip.split(",") if s}
    if skip - set(SCENARIOS):
        p.error(
            "--skip: unknown scenario(s) %s (known: %s)"
            % (", ".join(sorted(skip - set(SCENARIOS))), ", ".join(SCENARIOS))
        )
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    os.makedirs(a.workdir, exist_ok=True)
    a.workdir = os.path.abspath(a.workdir)

    def on_term(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    t_all = time.monotonic()
    fleet_cfg = {
        "hosts": a.hosts,
        "rate": a.rate,
        "path": a.path,
        "check_inter_ms": a.check_inter_ms,
        "rise": a.rise,
        "fall": a.fall,
        "retries": a.retries,
        "startup_delay": a.startup_delay,
        "latency": a.latency,
        "rounds": a.rounds,
        "cg_wait_interval": a.cg_wait_interval,
    }
    res = {
        "machine": machine(),
        "code": code_version(),
        "config": dict(
            fleet_cfg,
            scale=a.scale,
            scale_rate=a.scale_rate,
            forks=a.forks,
            baseline_ref=a.baseline_ref,
            bytecode_cache=not a.no_bytecode_cache,
            skip=sorted(skip),
            command=".venv/bin/python bench/rollout_bench.py " + " ".join(argv or sys.argv[1:]),
        ),
        "steps": list(STEPS),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": loadavg(),
    }
    log("load average at the start: %s", res["loadavg_start"])
    hl = {"config": fleet_cfg, "order": [], "runs": {k: [] for k in HEADLINE}, "errors": []}
    res["headline"] = hl
    # (section, label, callable, round); a failing scenario is recorded and the others still run
    plan = []
    variants = [False] if a.no_pipelining else [False, True]
    if "task_cost" not in skip:
        for pl in variants:
            plan.append(
                ("task_cost", "task cost pipelining=%s" % pl, lambda pl=pl: scenario_task_cost(a.workdir, 20, pl), 0)
            )
    first = {"classic": "127.0.0.21", "classic_cg": "127.0.0.41", "classic_ready": "127.0.0.51", "ours": "127.0.0.11"}
    for rnd in range(1, a.rounds + 1):
        for kind in HEADLINE:
            if kind in skip:
                continue
            name = "%s-r%d" % (kind, rnd)
            if kind == "ours":
                fn = lambda name=name: scenario_ours(a.workdir, name, a, first["ours"])  # noqa: E731
            else:
                fn = lambda name=name, kind=kind: scenario_classic(  # noqa: E731
                    a.workdir, name, a, first[kind], kind=kind
                )
            plan.append((kind, name, fn, rnd))
    if a.pipelining and "ours" not in skip:
        plan.append(
            (
                "ours_pipelining",
                "ours-pipelining",
                lambda: scenario_ours(a.workdir, "ours-pipelining", a, "127.0.0.11", True),
                0,
            )
        )
    if "warmup" not in skip and a.warmup > 0:
        # An app that answers 503 on /health until it is warm for longer, and load on /health: what
        # the classic "wait for the port" does not cover.
        plan.append(
            (
                "warmup",
                "ours-warmup",
                lambda: scenario_ours(a.workdir, "ours-warmup", a, "127.0.0.11", False, a.warmup, "/health"),
                0,
            )
        )
        plan.append(
            (
                "warmup",
                "classic-warmup",
                lambda: scenario_classic(a.workdir, "classic-warmup", a, "127.0.0.21", a.warmup, "/health"),
                0,
            )
        )
    baseline = {}

    def scale_baseline(n, first):
        if not baseline:
            baseline.update(ensure_baseline(a.baseline_ref, a.workdir))
            res["baseline"] = dict(baseline, cpu_per_host_s={})
        return scenario_scale(a.workdir, n, a, first, baseline)

    if "scale" not in skip and a.scale:
        for n in [int(x) for x in a.scale.split(",")]:
            first_addr = "127.0.0.31" if n <= 50 else "127.0.0.101"
            plan.append(("scale", "scale %d" % n, lambda n=n, f=first_addr: scenario_scale(a.workdir, n, a, f), 0))
            if a.baseline_ref and "baseline" not in skip:
                plan.append(
                    (
                        "scale",
                        "scale %d baseline %s" % (n, a.baseline_ref),
                        lambda n=n, f=first_addr: scale_baseline(n, f),
                        0,
                    )
                )
    rc = 0
    try:
        for section, label, fn, rnd in plan:
            try:
                r = fn()
            except Exception as e:  # record it, bring its fleet down (done inside), go on
                log("%s failed: %s", label, e if isinstance(e, BenchError) else repr(e))
                res.setdefault("errors", []).append("%s: %s" % (label, e if isinstance(e, BenchError) else repr(e)))
                if section in HEADLINE:
                    hl["errors"].append({"kind": section, "round": rnd, "error": str(e)})
                rc = 1
                continue
            if section in HEADLINE:
                r["round"] = rnd
                hl["runs"][section].append(r)
                hl["order"].append(label)
                hl["summary"] = headline_summary(hl)
            else:
                res.setdefault(section, []).append(r)
            if section == "task_cost":
                log(
                    "%s: module task %.3fs, controller task %.3fs, CPU/task %.3fs",
                    label,
                    r["module_task_s"],
                    r["controller_task_s"],
                    r["cpu_per_task_s"],
                )
            else:
                log(
                    "%s: rc=%d wall=%.1fs cpu=%.1fs failed=%s",
                    label,
                    r["rc"],
                    r["wall_s"],
                    r["cpu_s"],
                    r["load"]["failed"] if r.get("load") else "-",
                )
            if r.get("rc"):
                rc = 1
    except BaseException as e:
        log("benchmark aborted: %r", e)
        res["error"] = repr(e)
        rc = 1
    finally:
        for fleet in list(_LIVE):
            try:
                fleet_down(fleet)
            except Exception as e:  # keep going: every fleet must come down
                log("could not bring %s down: %s", fleet.dir, e)
                rc = 1
        hl["summary"] = headline_summary(hl)
        if "baseline" in res:
            res["baseline"]["cpu_per_host_s"] = baseline_summary(res.get("scale", []))
        res["loadavg_end"] = loadavg()
        res["duration_s"] = time.monotonic() - t_all
        res["cleanup_ok"] = not _LIVE
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True, default=str)
            f.write("\n")
        try:
            md = tables(res)  # partial results give partial tables
        except Exception as e:  # partial results: the JSON has everything
            md = "(no tables: %r)\n" % e
        with open(a.tables or os.path.join(a.workdir, "tables.md"), "w") as f:
            f.write(md)
        sys.stdout.write(md)
        log("load average at the end: %s; done in %.0fs; results in %s", res["loadavg_end"], res["duration_s"], a.json)
    return rc


if __name__ == "__main__":
    sys.exit(main())
