#!/usr/bin/env python3
"""The headline of bench/rollout_bench.py over SSH, on VM-like hosts (not a test; results in docs/performance.md).

The same four playbooks (bench/classic.yml, bench/classic_cg.yml, bench/classic_ready.yml and
zerodowntime.rollout.rolling_update with its defaults), and ours once more with HAProxy's admin socket over TCP
(``ours_tcp``: the LB calls run in the controller's process; neither it nor classic_ready is part of the ratio),
roll 4 app hosts from v1 to v2, one at a time, under the same load, in interleaved rounds. The hosts are those of
the real-host tests (tests/integration/vmhosts/): each its own systemd as PID 1, its own sshd and address; the app
is ``app.service`` (answering 503 on /health for its first second), HAProxy runs on its own host ``lb1`` (``check
inter 500ms rise 2 fall 2``, retries 0) with its unix admin socket readable by root only. Every playbook reaches
every host over SSH as ``deploy`` with ``become``, as users run the collection, with the fleet's SSH settings
(ControlPersist, pipelining) for all of them. Each run gets a fresh fleet on v1.

    sudo .venv/bin/python bench/ssh_headline.py --rounds 2 --json docs/performance-ssh.json

It needs what the real-host tests need (root, unshare, sshd, sudo; see tests/integration/vmhosts/) and the
``ansible`` wheel that ``make venv`` downloads (community.general for classic_cg).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import vmhosts  # noqa: E402

from bench import rollout_bench as rb  # noqa: E402
from tests.fixtures.fleet.loadgen import LoadGenerator  # noqa: E402

VARIANTS = ("classic", "classic_cg", "classic_ready", "ours", "ours_tcp")
PLAYBOOKS = {
    "classic": rb.CLASSIC,
    "classic_cg": rb.CLASSIC_CG,
    "classic_ready": rb.CLASSIC_READY,
    "ours": "zerodowntime.rollout.rolling_update",
    "ours_tcp": "zerodowntime.rollout.rolling_update",
}
LABELS = {
    "classic": "classic: disable/enable with socat on lb1",
    "classic_cg": "classic_cg: community.general.haproxy on lb1, drain + wait",
    "classic_ready": "classic_ready: classic + wait for readiness (not in the ratio)",
    "ours": "ours: defaults (rotation runs on lb1, unix admin socket)",
    "ours_tcp": "ours: admin socket over TCP, rotation in the controller (not in the ratio)",
}


def one_run(workdir, variant, round_no, args):
    """A fresh fleet on v1, one playbook to v2 under load; the run's numbers."""
    name = "ssh-%s-r%d" % (variant, round_no)
    env = {}
    if variant == "classic_cg":
        cg_root = rb.ensure_community_general()
        env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([rb.ansible_env()["ANSIBLE_COLLECTIONS_PATH"], cg_root])
    # Short: the SSH control sockets live below it.
    directory = tempfile.mkdtemp(prefix="zdb-", dir="/tmp")
    fleet = vmhosts.Fleet(
        directory,
        app_hosts=args.hosts,
        lb_hosts=1,
        app_args=["--grace", "20", "--startup-delay", str(args.startup_delay)],
        check_inter_ms=args.check_inter_ms,
        rise=args.rise,
        fall=args.fall,
        retries=0,
    )
    try:
        fleet.start()
        artifact, sha = fleet.build_artifact("v2")
        group_vars = None
        if variant == "ours_tcp":
            # HAProxy's admin socket over TCP (lb1 has one on its address): rotation runs in the controller's process
            # instead of as a module on lb1; the lock and the resume records go to the fleet's directory.
            group_vars = {
                "rolling_update_haproxy_delegate_to": ["localhost"],
                "rolling_update_haproxy_sockets": ["tcp://%s:%d" % (fleet.lb.address, fleet.lb.admin_port)],
                "rolling_update_state_dir": os.path.join(directory, "lb-state"),
            }
        inventory = fleet.write_inventory(os.path.join(directory, "inventory.yml"), group_vars=group_vars)
        env.update(fleet.ansible_env())
        if variant in ("ours", "ours_tcp"):
            extra = {
                "rolling_update_version": "v2",
                "rolling_update_artifact": artifact,
                "rolling_update_artifact_checksum": "sha256:" + sha,
                "rollout_serial": 1,
            }
            if variant == "ours_tcp":
                extra["rollout_lock_path"] = os.path.join(directory, "rollout.lock")
        else:
            extra = {
                "classic_version": "v2",
                "classic_artifact": artifact,
                "rollout_serial": 1,
                "classic_lb_host": fleet.lb.name,
                "classic_stop_command": "systemctl stop app.service",
                "classic_start_command": "systemctl start app.service",
            }
            if variant == "classic_cg":
                extra["classic_wait_interval"] = 1
        rb.log("%s: %s v1 -> v2 over SSH, serial 1, %s req/s on %s", name, variant, args.rate, args.path)
        load = LoadGenerator(fleet.lb.frontend_url + args.path, rate=args.rate).start()
        try:
            time.sleep(1.0)  # a second of steady traffic before the rollout (pacing, not a wait)
            res = rb.run_ansible(PLAYBOOKS[variant], inventory, extra, os.path.join(workdir, name), env=env)
            time.sleep(1.0)
        finally:
            summary = load.stop()
        versions = {h.name: h.version() for h in fleet.app_hosts}
    finally:
        fleet.stop()
        shutil.rmtree(directory, ignore_errors=True)
    del res["timings"]
    res.update(
        {
            "scenario": name,
            "kind": variant,
            "round": round_no,
            "hosts": args.hosts,
            "sent": summary.total,
            "failed": summary.failed,
            "versions_after": versions,
            "all_on_v2": set(versions.values()) == {"v2"},
            "cpu_per_host_s": res["cpu_s"] / args.hosts,
        }
    )
    return res


def summarise(runs):
    """Per variant: medians of the successful rounds; the ratio ours / the faster classic variant."""
    out = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["kind"] == variant]
        good = [r for r in mine if r["rc"] == 0 and r["all_on_v2"]]
        out[variant] = {
            "runs": len(mine),
            "ok": len(good),
            "wall_s": [round(r["wall_s"], 2) for r in mine],
            "wall_median_s": round(statistics.median([r["wall_s"] for r in good]), 2) if good else None,
            "failed": sum(r["failed"] for r in mine),
            "sent": [r["sent"] for r in mine],
            "cpu_per_host_median_s": round(statistics.median([r["cpu_per_host_s"] for r in good]), 2) if good else None,
            "load": [(round(r["loadavg_before"][0], 1), round(r["loadavg_after"][0], 1)) for r in mine],
        }
    classic = [out[v]["wall_median_s"] for v in rb.RATIO_CLASSICS if out[v]["wall_median_s"]]
    ours = out["ours"]["wall_median_s"]
    out["ratio"] = round(ours / min(classic), 2) if ours and classic else None
    tcp = out["ours_tcp"]["wall_median_s"]
    out["ratio_tcp"] = round(tcp / min(classic), 2) if tcp and classic else None
    ready = out["classic_ready"]["wall_median_s"]
    out["ratio_vs_classic_ready"] = round(ours / ready, 2) if ours and ready else None
    return out


def table(summary, args):
    lines = [
        "#### Over SSH: classic pattern vs ours; %d hosts (systemd, sshd, become), serial 1, %s req/s on %s; HAProxy "
        "on its own host, check inter %dms rise %d fall %d, retries 0; app start-up delay %ss; %d round(s), "
        "interleaved"
        % (
            args.hosts,
            args.rate,
            args.path,
            args.check_inter_ms,
            args.rise,
            args.fall,
            args.startup_delay,
            args.rounds,
        ),
        "",
        "| run | rc=0 / runs | wall (s), median | wall per round (s) | failed requests, all rounds | sent per round "
        "| CPU/host (s), median | load 1m per round |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant in VARIANTS:
        s = summary[variant]
        lines.append(
            "| %s | %d / %d | **%s** | %s | **%d** | %s | %s | %s |"
            % (
                LABELS[variant],
                s["ok"],
                s["runs"],
                s["wall_median_s"],
                ", ".join("%.1f" % w for w in s["wall_s"]),
                s["failed"],
                ", ".join(str(n) for n in s["sent"]),
                s["cpu_per_host_median_s"],
                ", ".join("%s→%s" % pair for pair in s["load"]),
            )
        )
    lines += [
        "",
        "**ours / faster classic over SSH = %s** (target ≤ 1.0 with 0 failed requests); with the admin socket over "
        "TCP: %s. ours / classic_ready (the classic pattern that waits for readiness too) = %s."
        % (summary["ratio"], summary["ratio_tcp"], summary["ratio_vs_classic_ready"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--rate", type=float, default=150.0)
    p.add_argument("--path", default="/health")
    p.add_argument("--check-inter-ms", type=int, default=500)
    p.add_argument("--rise", type=int, default=2)
    p.add_argument("--fall", type=int, default=2)
    p.add_argument("--startup-delay", type=float, default=1.0)
    p.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out"))
    p.add_argument("--json")
    args = p.parse_args(argv)
    missing = vmhosts.missing_requirements()
    if missing:
        raise SystemExit("bench/ssh_headline.py needs %s (as the real-host tests do)" % ", ".join(missing))
    os.makedirs(args.workdir, exist_ok=True)
    rb.BYTECODE_CACHE = os.path.join(args.workdir, "pycache")  # as bench/rollout_bench.py does for every variant
    started = time.time()
    load_start = os.getloadavg()
    runs = []
    for round_no in range(1, args.rounds + 1):
        for variant in VARIANTS:
            runs.append(one_run(args.workdir, variant, round_no, args))
    summary = summarise(runs)
    text = table(summary, args)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "started": started,
                    "duration_s": round(time.time() - started, 1),
                    "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(),
                    "code": rb.code_version(),
                    "machine": rb.machine(),
                    "config": vars(args),
                    "summary": summary,
                    "runs": runs,
                },
                f,
                indent=1,
                default=str,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
