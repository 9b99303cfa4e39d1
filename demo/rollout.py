#!/usr/bin/env python3
"""Roll the demo fleet to a new version under load with the real playbook (`make demo`).

Also a library for the zero-downtime tests and benchmarks: an inventory writer for a fleet, a
playbook runner, and a sampler that records, every 100 ms, which servers HAProxy has out of rotation.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from demo.fleet import Fleet, build_artifact, server_stats  # noqa: E402
from demo.loadgen import LoadGenerator  # noqa: E402

PLAYBOOK = "zerodowntime.rollout.rolling_update"


def write_inventory(fleet, path, group_vars=None, python=None):
    """An inventory for the fleet: group ``app`` with every host (local connection, own deploy
    path, start/stop commands, readiness URL), the HAProxy admin socket(s) driven from localhost."""
    python = python or sys.executable
    data = fleet.data
    hosts = {}
    for h in data["hosts"]:
        hosts[h["name"]] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": python,
            "rolling_update_path": h["deploy_path"],
            "rolling_update_start_command": h["start_command"],
            "rolling_update_stop_command": h["stop_command"],
            "rolling_update_app_host": h["address"],
            "rolling_update_app_port": h["port"],
            "rolling_update_health_url": "http://%s:%d/health" % (h["address"], h["port"]),
        }
    gvars = {
        "rolling_update_lb": "haproxy",
        "rolling_update_haproxy_sockets": [data["admin_socket"]],
        "rolling_update_haproxy_backend": data["backend"],
        "rolling_update_haproxy_delegate_to": "localhost",
        # The LB host's resume records (default /var/lib/zerodowntime-rollout): inside the fleet, so that
        # fleets never share them and a non-root demo works.
        "rolling_update_state_dir": os.path.join(fleet.dir, "lb-state"),
        # The rollout lock: one per fleet too, so that rollouts of different fleets (tests run side by side)
        # never wait on each other. An extra var rollout_lock_path still wins.
        "rollout_lock_path": os.path.join(fleet.dir, "rollout.lock"),
    }
    gvars.update(group_vars or {})
    inv = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": python}},
            "children": {"app": {"hosts": hosts, "vars": gvars}},
        }
    }
    with open(path, "w") as f:
        yaml.safe_dump(inv, f, sort_keys=False)
    return path


def resume_record_path(fleet, server, sockets=None):
    """Where the rotation module keeps the resume record of ``server`` for this fleet's LB host (see
    write_inventory's rolling_update_state_dir): it exists while a rollout has the server out of rotation."""
    root = os.path.join(ROOT, ".cache", "collections")
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import record_key

    key = record_key("haproxy", sockets or [fleet.data["admin_socket"]], "%s-%s" % (fleet.data["backend"], server))
    return os.path.join(fleet.dir, "lb-state", "rotation", key)


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
                [os.path.join(ROOT, ".cache", "collections"), os.path.join(ROOT, ".cache", "deps")]
            ),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
    )
    env.update(extra or {})
    return env


def run_playbook(inventory, extra_vars, args=(), env=None, bindir=None, stream=False, playbook=PLAYBOOK):
    """Run the rolling-update playbook; returns CompletedProcess (stdout captured unless stream)."""
    bindir = bindir or os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, playbook, "-e", json.dumps(extra_vars)]
    cmd += list(args)
    return subprocess.run(
        cmd,
        env=ansible_env(env),
        cwd=ROOT,
        text=True,
        capture_output=not stream,
        check=False,
    )


class RotationSampler:
    """Samples ``show stat`` every ``interval`` seconds; ``samples`` holds (t, {server: in_rotation})."""

    def __init__(self, sock, backend="app", interval=0.1):
        self.sock, self.backend, self.interval = sock, backend, interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                stats = server_stats(self.sock, self.backend)
                self.samples.append((t, {n: s["status"].startswith("UP") for n, s in stats.items()}))
            except Exception as exc:  # a failed read is a sample too: record it, don't hide it
                self.samples.append((t, {"_error": str(exc)}))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self

    def max_out_of_rotation(self):
        return max((sum(1 for k, v in s.items() if k != "_error" and not v) for _, s in self.samples), default=0)

    def errors(self):
        return [s["_error"] for _, s in self.samples if "_error" in s]

    def out_of_rotation_seconds(self):
        """Per server: total time (s) it was sampled out of rotation."""
        out = {}
        for (t0, s), (t1, _) in zip(self.samples, self.samples[1:]):
            for name, up in s.items():
                if name != "_error":
                    out.setdefault(name, 0.0)
                    if not up:
                        out[name] += t1 - t0
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--dir", default=os.path.join(ROOT, "demo", "run"))
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--serial", default="1")
    p.add_argument("--keep", action="store_true", help="leave the fleet running afterwards")
    a = p.parse_args(argv)

    print("==> bringing up %d app hosts on v1 behind HAProxy in %s" % (a.hosts, a.dir))
    # retries=0: HAProxy must not hide a failed request by replaying it on another server.
    fleet = Fleet.up(a.dir, hosts=a.hosts, version="v1", check_inter_ms=500, rise=2, fall=2, port=0, retries=0)
    rc = 1
    try:
        art_dir = os.path.join(a.dir, "artifacts")
        artifact, sha = build_artifact("v2", art_dir)
        inv = write_inventory(fleet, os.path.join(a.dir, "inventory.yml"))
        print("==> v2 artifact %s (sha256:%s)" % (artifact, sha))
        print("==> load: %.0f requests/s through %s" % (a.rate, fleet.data["frontend_url"]))
        sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"]).start()
        load = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=a.rate).start()
        time.sleep(2.0)  # a baseline of traffic on v1 before the rollout starts (demo pacing, not a wait)
        print("==> ansible-playbook %s -e rolling_update_version=v2 (serial %s)" % (PLAYBOOK, a.serial))
        report_dir = os.path.join(a.dir, "report")
        t0 = time.monotonic()
        proc = run_playbook(
            inv,
            {
                "rolling_update_version": "v2",
                "rolling_update_artifact": artifact,
                "rolling_update_artifact_checksum": "sha256:" + sha,
                "rollout_serial": a.serial,
            },
            stream=True,
            env={
                "ANSIBLE_CALLBACKS_ENABLED": "zerodowntime.rollout.rollout_report",
                "ZDT_ROLLOUT_REPORT_DIR": report_dir,
            },
        )
        wall = time.monotonic() - t0
        time.sleep(2.0)  # and some traffic on v2 afterwards
        summary = load.stop()
        sampler.stop()
        print()
        print("==> report")
        print("playbook rc=%d in %.1fs" % (proc.returncode, wall))
        print(summary.format())
        print("out of rotation per host (sampled every 100 ms):")
        for name, secs in sorted(sampler.out_of_rotation_seconds().items()):
            print("  %-6s %.1fs" % (name, secs))
        print("most servers out of rotation at once: %d" % sampler.max_out_of_rotation())
        versions = {h["name"]: fleet_version(h) for h in fleet.data["hosts"]}
        print("versions now: %s" % ", ".join("%s=%s" % kv for kv in sorted(versions.items())))
        ok = proc.returncode == 0 and summary.failed == 0 and set(versions.values()) == {"v2"}
        html_report = os.path.join(report_dir, "rollout-report.html")
        if os.path.exists(html_report):
            print("rollout timeline (HTML): %s" % html_report)
        print("RESULT: %s" % ("zero failed requests, every host on v2" if ok else "FAILED"))
        rc = 0 if ok else 1
    finally:
        if not a.keep:
            fleet.down()
            print("==> fleet stopped; nothing left running")
    return rc


def host_version(host):
    """The version a host's app answers on /version (raises when it does not answer)."""
    import urllib.request

    with urllib.request.urlopen("http://%s:%d/version" % (host["address"], host["port"]), timeout=5) as r:
        return r.read().decode().strip()


def versions(fleet):
    """``{host name: version}`` for every host of the fleet."""
    return {h["name"]: host_version(h) for h in fleet.data["hosts"]}


def fleet_version(host):
    try:
        return host_version(host)
    except Exception as exc:
        return "unreachable (%s)" % exc


if __name__ == "__main__":
    sys.exit(main())
