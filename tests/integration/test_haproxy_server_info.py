"""zerodowntime.rollout.haproxy_server_info against two real HAProxy instances (unix and TCP sockets)."""

import pytest
from helpers import run_tasks

from conftest import BACKEND, hap, server_snapshot, stat

pytestmark = pytest.mark.integration

MODULE = "zerodowntime.rollout.haproxy_server_info"


def test_info_reports_every_server_on_every_socket(clean_fleet, pair):
    unix1, tcp2 = pair
    hap(unix1, "set server %s/app2 state maint" % BACKEND)
    hap(unix1, "set server %s/app3 state drain" % BACKEND)
    hap(unix1, "set server %s/app1 weight 5" % BACKEND)
    hap(tcp2, "set server %s/app2 state drain" % BACKEND)
    expected = {unix1: stat(unix1), tcp2: stat(tcp2)}
    assert {n: s["status"] for n, s in expected[unix1].items()} == {"app1": "UP", "app2": "MAINT", "app3": "DRAIN"}
    snaps = {unix1: server_snapshot(unix1), tcp2: server_snapshot(tcp2)}

    info = {MODULE: {"sockets": [unix1, tcp2], "backend": BACKEND}}
    results, _proc = run_tasks([info, dict(info, check_mode=True), {MODULE: {"sockets": [unix1]}}])
    real, check, all_backends = results

    for result in (real, check):
        assert not result.get("failed"), result.get("msg")
        assert result["changed"] is False
        assert [e["socket"] for e in result["sockets"]] == [unix1, tcp2]
        for entry in result["sockets"]:
            servers = entry["backends"][BACKEND]["servers"]
            want = expected[entry["socket"]]
            assert sorted(servers) == sorted(want), entry["socket"]
            for name, s in want.items():
                got = servers[name]
                where = "%s %s" % (entry["socket"], name)
                assert got["status"] == s["status"], where
                assert got["weight"] == s["weight"], where
                assert got["sessions"] == s["scur"], where
    by_socket = {e["socket"]: e["backends"][BACKEND]["servers"] for e in real["sockets"]}
    assert by_socket[unix1]["app2"]["admin_state"] == "maint"
    assert by_socket[unix1]["app3"]["admin_state"] == "drain"
    assert by_socket[unix1]["app1"]["admin_state"] == "ready"
    assert by_socket[tcp2]["app2"]["admin_state"] == "drain"
    assert "app3" not in by_socket[tcp2]

    assert not all_backends.get("failed"), all_backends.get("msg")
    assert BACKEND in all_backends["sockets"][0]["backends"]

    # read-only: nothing changed anywhere
    assert server_snapshot(unix1) == snaps[unix1]
    assert server_snapshot(tcp2) == snaps[tcp2]


def test_info_unknown_backend_or_socket_fails(clean_fleet, tmp_path):
    missing = str(tmp_path / "nope.sock")
    results, _proc = run_tasks(
        [
            {MODULE: {"sockets": [clean_fleet.admin_socket], "backend": "no_such_backend"}},
            {MODULE: {"sockets": [missing], "backend": BACKEND}},
        ]
    )
    unknown, unreachable = results
    assert unknown.get("failed") and "no_such_backend" in unknown["msg"], unknown
    assert unreachable.get("failed") and missing in unreachable["msg"], unreachable
