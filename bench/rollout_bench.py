#!/usr/bin/env python3
"""Benchmark of the rolling_update role on the local demo fleet (not a test; results in docs/performance.md).

One run measures, each on a fresh fleet:

1. ours     the real playbook (zerodowntime.rollout.rolling_update) v1 -> v2, serial 1, under steady
            load through HAProxy: wall time, per-host time by step, failed requests, the physical
            floor per host and the overhead per host (also with ANSIBLE_PIPELINING=1 unless --no-pipelining);
2. classic  bench/classic.yml (plain ansible.builtin: disable, restart, wait for the port, enable)
            under the same load: wall time and failed requests;
3. scale    10 hosts and 100 hosts, each in 10 batches (rollout_serial "10%"): wall time, controller
            CPU seconds per host (user+sys of the ansible-playbook process tree), tasks per host,
            and the memory of 100 app processes.

Usage (from the repo root, after ``make venv``)::

    .venv/bin/python bench/rollout_bench.py [--hosts 4] [--rate 100] [--scale 10,100] [--json docs/performance.json]

Per-task timings come from bench/callback_plugins/bench_timings.py, enabled only for these runs.
Every fleet is brought down at the end, also on failure or Ctrl-C.
"""

import argparse
import contextlib
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from demo.fleet import (  # noqa: E402
    APP_CTL,
    Fleet,
    FleetError,
    build_artifact,
    free_port,
    http_get,
    install_release,
)
from demo.loadgen import LoadGenerator  # noqa: E402
from demo.rollout import PLAYBOOK, RotationSampler, ansible_env, fleet_version, write_inventory  # noqa: E402

CLASSIC = os.path.join(HERE, "classic.yml")
CALLBACKS = os.path.join(HERE, "callback_plugins")
STEPS = [
    "preflight",
    "skip-check",
    "capacity",
    "drain",
    "stop",
    "deploy",
    "start",
    "ready",
    "enable",
    "stabilise",
    "hooks",
    "rollback",
    "other",
]
_FILE_STEP = {
    "preflight": "preflight",
    "skip": "skip-check",
    "drain": "drain",
    "stop": "stop",
    "deploy": "deploy",
    "start": "start",
    "ready": "ready",
    "enable": "enable",
    "stabilize": "stabilise",
    "main": "hooks",
    "capacity": "capacity",
    "rollback": "rollback",
}
_LIVE = []  # fleets that are up; brought down in main()'s finally


def log(msg, *args):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args if args else msg))
    sys.stderr.flush()


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
        fall=2,
        port=0,
        first_address=first_address,
        startup_delay=args.startup_delay if startup_delay is None else startup_delay,
        latency=args.latency,
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


def run_ansible(playbook, inventory, extra_vars, out_prefix, forks=None, pipelining=False):
    """Run ansible-playbook with the timing callback. Returns wall time, CPU of the process tree
    (RUSAGE_CHILDREN delta: the apps that app-ctl detaches are not ours to wait for, so not counted)
    and the callback's records."""
    timings = out_prefix + ".timings.json"
    logfile = out_prefix + ".log"
    if os.path.exists(timings):
        os.unlink(timings)
    env = ansible_env(
        {
            "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timings",
            "BENCH_TIMINGS_FILE": timings,
            "ANSIBLE_PIPELINING": "1" if pipelining else "0",
        }
    )
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
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def step_of(path, previous):
    m = re.search(r"tasks/(haproxy/)?([A-Za-z_]+)\.yml", path or "")
    if not m:
        return "other"
    sub, name = m.group(1), m.group(2)
    if sub and name == "check":  # the LB read serves preflight and the stabilisation check
        return "stabilise" if previous in ("ready", "enable", "stabilise") else "preflight"
    return _FILE_STEP.get(name, "other")


def analyse_records(run, hosts):
    """Per host (its own batch): window, time by step, tasks executed/skipped, module-reported waits.
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
    shared = []
    for i in sorted(fleet_plays):
        mine = [r for r in recs if r.get("play") == i]
        per_host_tasks = len(mine) / len(hosts)
        shared.append(
            {
                "play": plays[i]["name"] if i < len(plays) else str(i),
                "wall_s": max(r["end"] for r in mine) - min(r["start"] for r in mine),
                "tasks_per_host": per_host_tasks,
                "tasks_executed_per_host": sum(1 for r in mine if r["status"] != "skipped") / len(hosts),
            }
        )
    per_host = {}
    for h in hosts:
        allmine = [r for r in recs if r["host"] == h]
        mine = [r for r in allmine if r.get("play") not in fleet_plays]
        if not mine:
            continue
        steps = {}
        counts = {}
        prev = None
        waits = {"drain": 0.0, "ready": 0.0, "enable": 0.0}
        for r in mine:
            s = step_of(r["path"], prev)
            prev = s if s != "hooks" else prev
            r["step"] = s
            dur = r["end"] - r["start"]
            steps[s] = steps.get(s, 0.0) + dur
            counts.setdefault(s, {"executed": 0, "skipped": 0})
            counts[s]["skipped" if r["status"] == "skipped" else "executed"] += 1
            el = r.get("elapsed")
            el = sum(el) if isinstance(el, list) else (el or 0.0)
            if s in waits and r["action"].endswith(("haproxy_server", "http_health")) and r["status"] != "skipped":
                waits[s] += el
        start = min(r["start"] for r in mine)
        end = max(r["end"] for r in mine)
        busy = sum(steps.values())
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
            "tasks_total_incl_fleet_plays": len(allmine),
            "tasks_executed_incl_fleet_plays": sum(1 for r in allmine if r["status"] != "skipped"),
            "waits_s": waits,
        }
    # cost of a task that does not wait, by outcome: median duration
    nowait = [
        r["end"] - r["start"]
        for r in recs
        if r["status"] != "skipped"
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
        "batches": len(plays) - len(fleet_plays),
        "plays": len(plays),
        "fleet_plays": shared,
        "records": len(recs),
    }


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
    return result


def scenario_ours(workdir, name, args, pipelining, first_address, startup_delay=None, path="/version"):
    fleet = fleet_up(workdir, name, args.hosts, args, first_address, startup_delay)
    try:
        artifact, sha = _artifact(fleet, "v2")
        repeat = args.probe_repeat if not startup_delay else min(2, args.probe_repeat)  # a slow start: fewer tries
        log("probing the app's start-to-ready (%d tries)", repeat)
        probe = probe_app(workdir, fleet, artifact, repeat)
        inv = write_inventory(fleet, os.path.join(fleet.dir, "inventory.yml"))
        extra = {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rollout_serial": 1,
            "rolling_update_health_interval": args.check_inter_ms / 1000.0,
        }
        log("%s: playbook v1 -> v2, serial 1, %d req/s, pipelining=%s", name, args.rate, pipelining)
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
    detection = args.rise * args.check_inter_ms / 1000.0
    max_req = (res["load"]["max_ms"] or 0.0) / 1000.0
    floors = {}
    for h, ph in an["per_host"].items():
        drain_elapsed = ph["waits_s"]["drain"]
        inflight = min(drain_elapsed, max_req)
        floors[h] = {
            "drain_elapsed_s": drain_elapsed,
            "inflight_s": inflight,
            "start_to_ready_s": probe["start_to_ready_s"],
            "detection_s": detection,
            "floor_s": inflight + probe["start_to_ready_s"] + detection,
            "floor_with_drain_elapsed_s": drain_elapsed + probe["start_to_ready_s"] + detection,
            "stop_s": probe["stop_s"],
        }
    n = len(hosts)
    total = res["wall_s"]
    sum_floor = sum(f["floor_s"] for f in floors.values())
    res.update(
        {
            "scenario": name,
            "hosts": n,
            "analysis": an,
            "floors": floors,
            "overhead_per_host_s": (total - sum_floor) / n,
            "cpu_per_host_s": res["cpu_s"] / n,
            "overhead_per_host_drain_elapsed_s": (total - sum(f["floor_with_drain_elapsed_s"] for f in floors.values()))
            / n,
            "overhead_per_host_incl_stop_s": (total - sum_floor - n * probe["stop_s"]) / n,
            "target_overhead_s": 1.0,
        }
    )
    res["target_met"] = res["overhead_per_host_s"] <= 1.0
    res["app_probe"] = probe
    res["load_path"] = path
    res["startup_delay"] = fleet.data["app_args"][1]
    del res["timings"]
    return res


def scenario_classic(workdir, name, args, first_address, startup_delay=None, path="/version"):
    fleet = fleet_up(workdir, name, args.hosts, args, first_address, startup_delay)
    try:
        artifact, _sha = _artifact(fleet, "v2")
        inv = write_inventory(fleet, os.path.join(fleet.dir, "inventory.yml"))
        extra = {"classic_version": "v2", "classic_artifact": artifact, "rollout_serial": 1}
        log("%s: bench/classic.yml v1 -> v2, serial 1, %d req/s on %s", name, args.rate, path)
        res = under_load(fleet, args.rate, lambda: run_ansible(CLASSIC, inv, extra, os.path.join(workdir, name)), path)
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
            "load_path": path,
            "startup_delay": fleet.data["app_args"][1],
            "hosts": len(hosts),
            "tasks_per_host": len(recs) / max(1, len(hosts)),
            "task_s": {t: {"n": len(v), "median": statistics.median(v)} for t, v in per_task.items()},
            "wall_per_host_s": res["wall_s"] / len(hosts),
        }
    )
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


def scenario_scale(workdir, hosts, args, first_address):
    name = "scale%d" % hosts
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
        extra = {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rollout_serial": "10%",
            "rolling_update_health_interval": args.check_inter_ms / 1000.0,
        }
        log("%s: playbook v1 -> v2, serial 10%%, forks %d, %s req/s", name, args.forks, args.scale_rate)
        res = under_load(
            fleet,
            args.scale_rate,
            lambda: run_ansible(PLAYBOOK, inv, extra, os.path.join(workdir, name), forks=args.forks),
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
            "hosts": hosts,
            "analysis": an,
            "batches": an["batches"],
            "wall_per_host_s": res["wall_s"] / hosts,
            "cpu_per_host_s": res["cpu_s"] / hosts,
            "tasks_executed_per_host": statistics.mean(executed) if executed else None,
            "tasks_skipped_per_host": statistics.mean(skipped) if skipped else None,
            "memory": mem,
            "all_on_v2": set(res["versions_after"].values()) == {"v2"},
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


def tables(res):
    """Markdown tables of the results (pasted into docs/performance.md)."""
    out = []
    cfg = res["config"]
    tc = res.get("task_cost", [])
    if tc:
        out.append(
            "### Fixed cost of one task (%d stat + %d assert tasks, one local host)\n"
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
    ours = res.get("ours", [])
    if ours:
        out.append("\n### Ours: rolling_update, %d hosts, serial 1, %s req/s\n" % (ours[0]["hosts"], cfg["rate"]))
        out.append(
            _head(
                "variant",
                "rc",
                "wall (s)",
                "failed / sent",
                "floors (s)",
                "overhead/host (s)",
                "CPU/host (s)",
                "load 1m",
            )
        )
        for r in ours:
            out.append(
                _row(
                    _variant(r),
                    r["rc"],
                    fmt(r["wall_s"], 1),
                    "%d / %d" % (r["load"]["failed"], r["load"]["total"]),
                    fmt(sum(f["floor_s"] for f in r["floors"].values())),
                    "**%s** (%s)" % (fmt(r["overhead_per_host_s"]), "met" if r["target_met"] else "not met"),
                    fmt(r["cpu_per_host_s"]),
                    _load(r),
                )
            )
        for r in ours:
            an = r["analysis"]
            out.append("\nPer host by step, %s (seconds):\n" % _variant(r))
            out.append(_head("host", *STEPS, "between tasks", "window", "tasks run / skipped"))
            for h, ph in an["per_host"].items():
                out.append(
                    _row(
                        h,
                        *[fmt(ph["steps_s"].get(s)) for s in STEPS],
                        fmt(ph["between_tasks_s"]),
                        fmt(ph["window_s"]),
                        "%d / %d" % (ph["tasks_executed"], ph["tasks_skipped"]),
                    )
                )
            for fp in an["fleet_plays"]:
                out.append(
                    "\nBefore the batches, the play '%s' ran on all hosts at once: %.2f s, %.0f tasks per host "
                    "(%.0f executed)." % (fp["play"], fp["wall_s"], fp["tasks_per_host"], fp["tasks_executed_per_host"])
                )
            out.append(
                "\nansible-playbook start-up before the first task %.2f s, after the last task %.2f s; "
                "median non-waiting module task %s s, median skipped task %s s."
                % (an["startup_s"], an["shutdown_s"], fmt(an["median_task_s"], 3), fmt(an["median_skipped_task_s"], 3))
            )
        r = ours[0]
        out.append("\nFloor per host, %s (seconds):\n" % _variant(r))
        out.append(
            _head("host", "drain wait (module elapsed)", "longest request", "app start→ready", "rise×inter", "floor")
        )
        for h, f in r["floors"].items():
            out.append(
                _row(
                    h,
                    fmt(f["drain_elapsed_s"], 3),
                    fmt(f["inflight_s"], 3),
                    fmt(f["start_to_ready_s"], 3),
                    fmt(f["detection_s"], 3),
                    fmt(f["floor_s"], 3),
                )
            )
    pairs = []
    if res.get("classic"):
        pairs.append(
            ("Classic (bench/classic.yml) vs ours, app ready at once, load on /version", ours[:1] + [res["classic"]])
        )
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
                tph = statistics.mean(p["tasks_total_incl_fleet_plays"] for p in r["analysis"]["per_host"].values())
                label = "ours (%s)" % _variant(r)
            else:
                tph, label = r["tasks_per_host"], "classic"
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
        if len(sc) >= 2:
            a, b = sc[0]["cpu_per_host_s"], sc[-1]["cpu_per_host_s"]
            out.append(
                "\nCPU per host, %d vs %d hosts: %+.0f%% (target: within 20%%)."
                % (sc[0]["hosts"], sc[-1]["hosts"], 100.0 * (b - a) / a)
            )
        for r in sc:
            m = r["memory"]
            out.append(
                "\nMemory, %d hosts: %d app processes, %.0f MB RSS in total (%.1f MB each), HAProxy %.0f MB; "
                "MemAvailable %.0f MB before the fleet, %.0f MB with it up (of %.0f MB)."
                % (
                    r["hosts"],
                    m["app_processes"],
                    m["app_rss_total_mb"],
                    m["app_rss_mean_mb"],
                    m["haproxy_rss_mb"],
                    m["mem_available_before_mb"],
                    m["mem_available_after_up_mb"],
                    m["mem_total_mb"],
                )
            )
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--hosts", type=int, default=4, help="hosts for the ours/classic comparison")
    p.add_argument("--rate", type=float, default=100.0, help="req/s through HAProxy during ours/classic")
    p.add_argument("--scale", default="10,100", help="host counts for the scale runs ('' to skip)")
    p.add_argument("--scale-rate", type=float, default=20.0, help="light load during the scale runs (0: none)")
    p.add_argument("--forks", type=int, default=10, help="--forks for the scale runs (>= the batch size)")
    p.add_argument("--check-inter-ms", type=int, default=200, help="HAProxy check interval")
    p.add_argument("--rise", type=int, default=2)
    p.add_argument("--startup-delay", type=float, default=0.0, help="app: seconds before /health is 200")
    p.add_argument("--latency", type=float, default=0.0, help="app: seconds added to every request")
    p.add_argument("--probe-repeat", type=int, default=5)
    p.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="app start-up delay for the readiness pair (ours vs classic, load on /health); 0 to skip",
    )
    p.add_argument("--no-pipelining", action="store_true", help="skip the ANSIBLE_PIPELINING=1 variant")
    p.add_argument("--skip", default="", help="comma list of task_cost,ours,classic,warmup,scale to skip")
    p.add_argument("--workdir", default=os.path.join(HERE, "out"))
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "performance.json"))
    p.add_argument("--tables", default=None, help="write the markdown tables here too (default: workdir/tables.md)")
    p.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's JSON")
    a = p.parse_args(argv)
    if a.report:
        with open(a.report) as f:
            sys.stdout.write(tables(json.load(f)))
        return 0
    skip = {s for s in a.skip.split(",") if s}
    os.makedirs(a.workdir, exist_ok=True)
    a.workdir = os.path.abspath(a.workdir)

    def on_term(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    t_all = time.monotonic()
    res = {
        "machine": machine(),
        "code": code_version(),
        "config": {
            "hosts": a.hosts,
            "rate": a.rate,
            "scale": a.scale,
            "scale_rate": a.scale_rate,
            "forks": a.forks,
            "check_inter_ms": a.check_inter_ms,
            "rise": a.rise,
            "startup_delay": a.startup_delay,
            "latency": a.latency,
            "command": ".venv/bin/python bench/rollout_bench.py " + " ".join(argv or sys.argv[1:]),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    plan = []  # (section, label, callable); a failing scenario is recorded and the others still run
    variants = [False] if a.no_pipelining else [False, True]
    if "task_cost" not in skip:
        for pl in variants:
            plan.append(
                ("task_cost", "task cost pipelining=%s" % pl, lambda pl=pl: scenario_task_cost(a.workdir, 20, pl))
            )
    if "ours" not in skip:
        for pl in variants:
            plan.append(
                (
                    "ours",
                    "ours pipelining=%s" % pl,
                    lambda pl=pl: scenario_ours(a.workdir, "ours-pipe%d" % pl, a, pl, "127.0.0.11"),
                )
            )
    if "classic" not in skip:
        plan.append(("classic", "classic", lambda: scenario_classic(a.workdir, "classic", a, "127.0.0.21")))
    if "warmup" not in skip and a.warmup > 0:
        # The same pair with an app that answers 503 until it is warm, and load on a path that
        # depends on readiness (/health): what the classic "wait for the port" does not cover.
        plan.append(
            (
                "warmup",
                "ours-warmup",
                lambda: scenario_ours(a.workdir, "ours-warmup", a, False, "127.0.0.11", a.warmup, "/health"),
            )
        )
        plan.append(
            (
                "warmup",
                "classic-warmup",
                lambda: scenario_classic(a.workdir, "classic-warmup", a, "127.0.0.21", a.warmup, "/health"),
            )
        )
    if "scale" not in skip and a.scale:
        for n in [int(x) for x in a.scale.split(",")]:
            first = "127.0.0.31" if n <= 50 else "127.0.0.101"
            plan.append(("scale", "scale %d" % n, lambda n=n, first=first: scenario_scale(a.workdir, n, a, first)))
    rc = 0
    try:
        for section, label, fn in plan:
            try:
                r = fn()
            except Exception as e:  # record it, bring its fleet down (done inside), go on
                log("%s failed: %r", label, e)
                res.setdefault("errors", []).append("%s: %r" % (label, e))
                rc = 1
                continue
            if section == "classic":
                res["classic"] = r
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
        log("done in %.0fs; results in %s", res["duration_s"], a.json)
    return rc


if __name__ == "__main__":
    sys.exit(main())
