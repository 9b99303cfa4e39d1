"""After a rollout of a release that never becomes ready (converge, then the same rollout again in
side_effect): every host is on the old release and serving it, HAProxy has every server UP, and only
the first host ever saw the broken release.

Each host's deploy path, address, port and the HAProxy admin socket come from the inventory the role
used (molecule's plus the inventory/fleet.yml that create.yml wrote). HAProxy is read here, over its
admin socket with a plain Python socket, independently of the collection's modules.
"""

import csv
import io
import json
import socket

import pytest

testinfra_hosts = ["ansible://app"]


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def first_host(hostvars):
    return hostvars["groups"]["app"][0]


def _admin(sock, command):
    """Send one Runtime API command to ``/path/admin.sock`` or ``tcp://host:port``; return the answer."""
    if sock.startswith("tcp://"):
        address, _colon, port = sock[len("tcp://") :].rpartition(":")
        conn = socket.create_connection((address, int(port)), timeout=5)
    else:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5)
        conn.connect(sock)
    with conn:
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _servers(sock, backend):
    """``{server: row}`` of ``show stat <backend> 4 -1`` (servers only), rows keyed by the CSV header."""
    out = _admin(sock, "show stat %s 4 -1" % backend)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("# "), "not a 'show stat' answer from %s: %r" % (sock, out[:300])
    rows = csv.DictReader(io.StringIO("\n".join([lines[0][2:]] + lines[1:])))
    return {row["svname"]: row for row in rows if row["pxname"] == backend}


def _get(host, hostvars, path):
    """``status body`` of a GET on the app, made from the host itself."""
    url = "http://%s:%d%s" % (hostvars["rolling_update_app_host"], hostvars["rolling_update_app_port"], path)
    code = (
        "import sys, urllib.error, urllib.request\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
        "except urllib.error.HTTPError as e:\n"
        "    r = e\n"
        "print(r.status, r.read().decode().strip())"
    )
    python = hostvars.get("ansible_python_interpreter", "python3")
    status, _space, body = host.check_output("%s -c %s %s", python, code, url).partition(" ")
    return int(status), body


def test_the_broken_release_is_not_the_old_one(hostvars):
    assert hostvars["rolling_update_version"] != hostvars["molecule_fleet_from_version"]
    assert hostvars["molecule_fleet_to_never_ready"] is True


def test_current_points_at_the_old_release(host, hostvars):
    old = hostvars["molecule_fleet_from_version"]
    current = host.file(hostvars["rolling_update_path"] + "/current")
    release = host.file("%s/releases/%s" % (hostvars["rolling_update_path"], old))
    assert current.is_symlink
    assert current.linked_to == release.linked_to  # both fully resolved (readlink -f)
    assert host.file(release.path + "/VERSION").content_string.strip() == old


def test_only_the_first_host_ran_the_broken_release(host, hostvars, first_host):
    path = hostvars["rolling_update_path"]
    version = hostvars["rolling_update_version"]
    # The role alone (converge.yml) unpacks in each host's own batch, so only the first host has it; the rollback
    # recorded it there, so a plain re-run refuses it.
    assert host.file("%s/releases/%s" % (path, version)).exists == (host.backend.host == first_host)
    if host.backend.host == first_host:
        state = json.loads(host.file(path + "/.rollout-state.json").content_string)
        assert state.get("releases", {}).get(version, {}).get("rolled_back_at"), state
    # Nobody was left drained: the rotation module removes its resume record (on the LB host) once the host is back.
    records = host.file(hostvars["rolling_update_state_dir"] + "/rotation")
    assert not records.exists or not [n for n in records.listdir() if n.endswith(".json")]


def test_app_is_ready_and_answers_with_the_old_version(host, hostvars):
    assert _get(host, hostvars, "/version") == (200, hostvars["molecule_fleet_from_version"])
    assert _get(host, hostvars, "/health")[0] == 200


def test_haproxy_has_the_server_up_and_only_the_first_host_went_down(host, hostvars, first_host):
    assert hostvars["rolling_update_haproxy_delegate_to"] == "localhost", "these tests read HAProxy locally"
    backend = hostvars["rolling_update_haproxy_backend"]
    server = hostvars.get("rolling_update_haproxy_server", host.backend.host)
    assert hostvars["rolling_update_haproxy_sockets"]
    for sock in hostvars["rolling_update_haproxy_sockets"]:
        rows = _servers(sock, backend)
        assert server in rows, "HAProxy at %s has no server %s/%s: %s" % (sock, backend, server, sorted(rows))
        row = rows[server]
        # Exactly "UP": not "UP 1/2" (still rising), "DOWN", "DRAIN" or "MAINT".
        assert row["status"] == "UP", json.dumps(row)
        assert int(row["weight"]) > 0, json.dumps(row)
        # chkdown counts UP -> DOWN transitions since HAProxy started: the first host was really stopped
        # (twice: converge and side_effect), the others never were.
        if host.backend.host == first_host:
            assert int(row["chkdown"]) >= 1, json.dumps(row)
        else:
            assert int(row["chkdown"]) == 0, json.dumps(row)


def test_the_first_host_records_the_broken_release_as_rolled_back(host, hostvars, first_host):
    """What makes a plain re-run refuse the release (molecule's idempotence step) instead of retrying it."""
    state_file = host.file(hostvars["rolling_update_path"] + "/.rollout-state.json")
    if host.backend.host != first_host:
        # never saw the broken release: nothing on it is recorded as rolled back
        if state_file.exists:
            releases = json.loads(state_file.content_string)["releases"]
            assert not [n for n, r in releases.items() if r.get("rolled_back_at")], releases
        return
    releases = json.loads(state_file.content_string)["releases"]
    assert releases[hostvars["rolling_update_version"]].get("rolled_back_at"), releases
    assert "rolled_back_at" not in releases[hostvars["molecule_fleet_from_version"]], releases
