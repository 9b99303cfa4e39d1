import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.zerodowntime.rollout.plugins.filter.capacity_guard import capacity_guard


def info(lb, servers):
    return {
        "item": lb,
        "sockets": [
            {
                "socket": "/run/haproxy/admin.sock",
                "backends": {
                    "app": {"servers": {n: {"healthy": h, "admin_state": a} for n, (h, a) in servers.items()}}
                },
            }
        ],
    }


def test_registered_loop_result():
    data = {"results": [info("lb1", {"a": (True, "ready"), "b": (True, "drain"), "c": (True, "ready")})]}
    v = capacity_guard(data, "app", ["a"], 2)
    assert v["ok"] is False and v["lbs"][0]["down"] == ["b"] and v["lbs"][0]["where"].startswith("lb1:")
    assert capacity_guard(data, "app", ["a"], 1)["ok"] is True


def test_bad_spec_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="min_healthy"):
        capacity_guard({"results": []}, "app", ["a"], "lots")
