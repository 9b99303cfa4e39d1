#!/usr/bin/env python3
"""Roll the demo fleet to a new version under load with the real playbook (`make demo`).

The fleet, the load generator, the inventory writer, the playbook runner and the rotation sampler are the
integration tests' own fixtures (tests/fixtures/fleet/); this file is only the demo's entry point.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.fleet.fleet import Fleet  # noqa: E402
from tests.fixtures.fleet.loadgen import LoadGenerator  # noqa: E402
from tests.fixtures.fleet.playbook import PLAYBOOK, fleet_version, run_playbook, write_inventory  # noqa: E402
from tests.fixtures.fleet.release import build_artifact  # noqa: E402
from tests.fixtures.fleet.sampler import RotationSampler  # noqa: E402


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


if __name__ == "__main__":
    sys.exit(main())
