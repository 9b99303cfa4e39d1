"""After converge: every app host runs the target release, listens, answers with that version,
and HAProxy has it back in rotation.

testinfra's ansible backend reads molecule's inventory directory (molecule's own file plus the
inventory/fleet.yml that create.yml wrote), so each host's deploy path, address, port and the HAProxy
admin socket come from the same variables the role used. The hosts are local processes
(``ansible_connection: local``), so commands run on this machine. HAProxy's admin socket is read
where the role's load-balancer tasks ran (``rolling_update_haproxy_delegate_to``, localhost here),
with socat, independently of the collection's modules.
"""

import csv
import io
import json

import pytest
import testinfra

testinfra_hosts = ["ansible://app"]

LB_HOST = testinfra.get_host("local://")


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


def _socat_address(sock):
    if sock.startswith("tcp://"):
        return "TCP:" + sock[len("tcp://") :]
    return "UNIX-CONNECT:" + sock


def _show_stat(sock, backend):
    """Rows of ``show stat <backend> 4 -1`` (servers only), as dicts keyed by the CSV header."""
    out = LB_HOST.check_output(
        "printf '%%s\\n' %s | socat -t 5 STDIO %s", "show stat %s 4 -1" % backend, _socat_address(sock)
    )
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("# "), "not a 'show stat' answer from %s: %r" % (sock, out[:300])
    return list(csv.DictReader(io.StringIO("\n".join([lines[0][2:]] + lines[1:]))))


def test_current_points_at_the_target_release(host, hostvars):
    version = hostvars["rolling_update_version"]
    current = host.file(hostvars["rolling_update_path"] + "/current")
    release = host.file("%s/releases/%s" % (hostvars["rolling_update_path"], version))
    assert current.is_symlink
    assert release.is_directory
    assert current.linked_to == release.linked_to  # both fully resolved (readlink -f)
    assert host.file(release.path + "/VERSION").content_string.strip() == version


def test_app_listens_on_its_address_and_port(host, hostvars):
    address = "tcp://%s:%d" % (hostvars["rolling_update_app_host"], hostvars["rolling_update_app_port"])
    assert host.socket(address).is_listening


def test_app_answers_with_the_target_version(host, hostvars):
    url = "http://%s:%d/version" % (hostvars["rolling_update_app_host"], hostvars["rolling_update_app_port"])
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    python = hostvars.get("ansible_python_interpreter", "python3")
    assert host.check_output("%s -c %s %s", python, code, url).strip() == hostvars["rolling_update_version"]


def test_haproxy_reports_the_server_up_and_ready(host, hostvars):
    assert hostvars["rolling_update_haproxy_delegate_to"] == "localhost", "these tests read HAProxy locally"
    backend = hostvars["rolling_update_haproxy_backend"]
    server = hostvars.get("rolling_update_haproxy_server", host.backend.host)
    sockets = hostvars["rolling_update_haproxy_sockets"]
    assert sockets
    for sock in sockets:
        rows = {r["svname"]: r for r in _show_stat(sock, backend) if r["pxname"] == backend}
        assert server in rows, "HAProxy at %s has no server %s/%s: %s" % (sock, backend, server, sorted(rows))
        row = rows[server]
        # Exactly "UP": not "UP 1/3" (still rising), "DRAIN" or "MAINT" (taken out by an operator).
        assert row["status"] == "UP", json.dumps(row)
        assert int(row["weight"]) > 0, json.dumps(row)
