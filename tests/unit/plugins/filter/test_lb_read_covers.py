"""Whether the preflight's one batch read of the HAProxy hosts answers for a host with its own settings."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.filter.lb_read_covers import lb_read_covers

SOCK = "/run/haproxy/admin.sock"
READ_FOR = {"backend": "app", "sockets": [SOCK], "state_dir": "/var/lib/zerodowntime-rollout"}
SETTINGS = {"backend": "app", "server": "app2", "sockets": [SOCK], "state_dir": "/var/lib/zerodowntime-rollout"}


def read(item, servers=("app1", "app2"), failed=False, **read_for):
    result = {"item": item, "read_for": dict(READ_FOR, **read_for)}
    if failed:
        result.update(failed=True, msg="Connection refused")
    else:
        result["batch_reads"] = {name: {"found": True} for name in servers}
    return result


def covers(results, lb_hosts=("lb1", "lb2"), **settings):
    return lb_read_covers({"results": results}, list(lb_hosts), dict(SETTINGS, **settings))


def test_the_same_lb_hosts_and_settings_with_this_server_are_covered():
    assert covers([read("lb1"), read("lb2")]) is True


def test_a_failed_read_with_the_same_settings_covers_the_host_with_its_failure():
    assert covers([read("lb1"), read("lb2", failed=True)]) is True


@pytest.mark.parametrize(
    "results, lb_hosts, settings",
    [
        ([read("lb1"), read("lb2")], ("lb2", "lb1"), {}),  # other LB hosts, or another order
        ([read("lb1")], ("lb1", "lb2"), {}),
        ([read("lb1"), read("lb2")], ("lb1", "lb2"), {"backend": "other"}),
        ([read("lb1"), read("lb2")], ("lb1", "lb2"), {"sockets": [SOCK, "tcp://10.0.0.1:9999"]}),
        ([read("lb1"), read("lb2")], ("lb1", "lb2"), {"state_dir": "/srv/state"}),
        ([read("lb1"), read("lb2", servers=("app1",))], ("lb1", "lb2"), {}),  # does not name this server
        ([read("lb1"), {"item": "lb2", "failed": True, "msg": "bad option"}], ("lb1", "lb2"), {}),  # no read_for
        ([read("lb1"), read("lb2")], ("lb1", "lb2"), {"server": "app2;disable server app/app1"}),
        ([read("lb1"), read("lb2")], ("lb1", "lb2"), {"sockets": []}),
    ],
)
def test_anything_else_reads_for_itself(results, lb_hosts, settings):
    assert covers(results, lb_hosts, **settings) is False


def test_a_skipped_or_missing_batch_read_covers_nothing():
    assert lb_read_covers({"skipped": True, "results": []}, ["lb1"], SETTINGS) is False
    assert lb_read_covers({"results": []}, [], SETTINGS) is False
    assert lb_read_covers(None, ["lb1"], SETTINGS) is False


def test_names_and_paths_are_compared_as_the_read_reports_them():
    numbered = read("lb1", servers=("1",), state_dir="/var/lib/x")
    assert lb_read_covers({"results": [numbered]}, ["lb1"], dict(SETTINGS, server=1, state_dir="/var/lib/x/")) is True
