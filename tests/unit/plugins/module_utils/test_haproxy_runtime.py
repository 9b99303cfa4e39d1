# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers, name validation, answer classification and transport of the HAProxy runtime client.

Parsers run against output recorded from a real HAProxy 2.6.12 (tests/unit/fixtures/haproxy).
"""

import errno
import os
import socket
import tempfile
import threading
import time

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import (
    LBCommandError,
    LBPermissionError,
    LBUnreachableError,
    NotFoundError,
    ValidationError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import client as haproxy_client
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import names as haproxy_names
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import parse as haproxy_parse
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy import transport as haproxy_transport
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.haproxy.fake_haproxy import fixture


class ScriptedTransport:
    """Answers each command from a {command: answer} table; records what was sent."""

    def __init__(self, answers):
        self.answers = answers
        self.sent = []

    def exchange(self, command):
        self.sent.append(command)
        return self.answers[command]


class RecordingTransport:
    """Hands each command to a real transport, and records every command the client handed over."""

    def __init__(self, inner):
        self.inner = inner
        self.sent = []

    def exchange(self, command):
        self.sent.append(command)
        return self.inner.exchange(command)


def servers_from(stat_fixture, state_fixture=None, backend="be_app"):
    stat_rows = haproxy_parse.parse_show_stat(fixture(stat_fixture))
    state_rows = haproxy_parse.parse_servers_state(fixture(state_fixture))[1] if state_fixture else []
    return haproxy_parse.build_backends(stat_rows, state_rows)[backend]["servers"]


# ---------------------------------------------------------------------------------------------
# show stat / show servers state parsers
# ---------------------------------------------------------------------------------------------


def test_parse_show_stat_all_keeps_every_row_by_header_name():
    rows = haproxy_parse.parse_show_stat(fixture("show_stat_all.txt"))
    names = [(r["pxname"], r["svname"]) for r in rows]
    assert ("fe_web", "FRONTEND") in names
    assert ("be_app", "BACKEND") in names
    assert ("be_api.v2", "api-1:a") in names
    web4 = next(r for r in rows if r["svname"] == "web4")
    assert web4["status"] == "DOWN"
    assert web4["check_status"] == "L4CON"
    assert "-" not in web4 and "" not in web4  # the "-" separator column and the trailing comma are dropped


def test_servers_of_recorded_backend():
    servers = servers_from("show_stat_be_app_servers_and_backend.txt", "show_servers_state_be_app.txt")
    assert sorted(servers) == ["web1", "web2", "web3", "web4"]
    web1, web2, web3, web4 = (servers[n] for n in ("web1", "web2", "web3", "web4"))
    assert (web1["status"], web1["base_status"], web1["steady"], web1["healthy"]) == ("UP", "UP", True, True)
    assert web1["check_status"] == "L7OK" and web1["check_code"] == 200 and web1["has_check"] is True
    assert web2["weight"] == 50 and web2["initial_weight"] == 50
    assert (web3["status"], web3["healthy"], web3["has_check"]) == ("no check", True, False)
    assert (web4["status"], web4["healthy"], web4["operational_state"]) == ("DOWN", False, "stopped")
    assert web4["check_description"] == "Layer4 connection problem"
    for server in servers.values():
        assert server["admin_state"] == "ready"
        assert set(server["responses"]) == {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}


def test_backend_totals_are_included():
    backends = haproxy_parse.build_backends(
        haproxy_parse.parse_show_stat(fixture("show_stat_be_app_servers_and_backend.txt")), []
    )
    totals = backends["be_app"]["totals"]
    assert totals["status"] == "UP"
    assert totals["algorithm"] == "roundrobin"
    assert totals["mode"] == "http"
    assert totals["active_servers"] == 3


def test_draining_with_a_request_in_flight():
    servers = servers_from("show_stat_draining_inflight.txt", "show_servers_state_draining.txt")
    web3 = servers["web3"]
    assert web3["status"] == "DRAIN"
    assert web3["sessions"] == 1 and web3["queue"] == 0
    assert web3["admin_state"] == "drain"
    assert web3["admin_state_bits"] == 8 and web3["admin_flags"] == ["forced_drain"]
    assert not haproxy_parse.is_drained(web3)


def test_after_shutdown_sessions_the_server_is_drained():
    servers = servers_from("show_stat_before_shutdown.txt")
    assert servers["web3"]["sessions"] == 1
    servers = servers_from("show_stat_after_shutdown.txt")
    assert haproxy_parse.is_drained(servers["web3"])


def test_transitional_status_after_ready_is_not_up():
    servers = servers_from("show_stat_after_ready_transitional.txt", "show_servers_state_after_ready_transitional.txt")
    web1 = servers["web1"]
    assert web1["status"] == "UP 1/2"
    assert (web1["base_status"], web1["steady"]) == ("UP", False)
    assert web1["admin_state"] == "ready"
    assert not haproxy_parse.is_up(web1), "UP 1/2 must not count as UP (substring-match bug)"


def test_going_down_and_going_up_are_transitional():
    going_down = servers_from("show_stat_going_down.txt")["web1"]
    going_up = servers_from("show_stat_going_up.txt")["web1"]
    assert haproxy_parse.normalise_status(going_down["status"]) == ("UP", False)
    assert haproxy_parse.normalise_status(going_up["status"]) == ("DOWN", False)
    assert going_up["status"] in ("DOWN 1/3", "DOWN 2/3")
    assert not haproxy_parse.is_up(going_down) and not haproxy_parse.is_up(going_up)


def test_maint_forced_and_inherited():
    servers = servers_from("show_stat_mixed_transitional.txt", "show_servers_state_mixed.txt")
    assert servers["web4"]["admin_state"] == "maint" and servers["web4"]["admin_flags"] == ["forced_maint"]
    inherited = servers_from("show_stat_be_dis_inherited.txt", "show_servers_state_be_dis_inherited.txt", "be_dis")
    assert inherited["s2"]["status"] == "MAINT (via be_app/web1)"
    assert inherited["s2"]["base_status"] == "MAINT" and inherited["s2"]["steady"] is True
    assert inherited["s2"]["admin_state"] == "maint" and inherited["s2"]["admin_flags"] == ["inherited_maint"]
    assert inherited["s1"]["admin_flags"] == ["forced_maint", "config_disabled"]


def test_config_disabled_bit_alone_is_not_maint():
    rows = haproxy_parse.parse_servers_state(fixture("show_servers_state_be_dis_config_disabled_ready.txt"))[1]
    s1 = next(r for r in rows if r["srv_name"] == "s1")
    assert s1["srv_admin_state"] == "4"
    assert haproxy_parse.admin_state_from_bits(4) == "ready"


@pytest.mark.parametrize(
    "bits, expected",
    [(0, "ready"), (1, "maint"), (2, "maint"), (4, "ready"), (5, "maint"), (8, "drain"), (0x10, "drain"),
     (0x20, "maint"), (0x40, "ready"), (0x09, "maint")],
)  # fmt: skip
def test_admin_state_bits(bits, expected):
    assert haproxy_parse.admin_state_from_bits(bits) == expected


def test_parse_servers_state_version_and_header():
    version, rows = haproxy_parse.parse_servers_state(fixture("show_servers_state_all.txt"))
    assert version == "1"
    assert [(r["be_name"], r["srv_name"]) for r in rows][-1] == ("be_api.v2", "api-1:a")
    assert rows[0]["srv_admin_state"] == "0" and rows[0]["srv_uweight"] == "1"


def test_parsers_are_tolerant_of_unknown_extra_columns():
    stat = (
        "# pxname,svname,new_col_a,qcur,scur,status,another_new,weight,stot,\n"
        "be_x,s1,zz,2,7,UP 1/3,42,9,100,\n"
        "be_x,BACKEND,zz,2,7,UP,42,9,100,\n"
    )
    state = "2\n# be_id be_name extra_one srv_id srv_name srv_op_state srv_admin_state srv_uweight more\n" + (
        "3 be_x q 1 s1 2 8 9 w\n"
    )
    backends = haproxy_parse.build_backends(
        haproxy_parse.parse_show_stat(stat), haproxy_parse.parse_servers_state(state)[1]
    )
    s1 = backends["be_x"]["servers"]["s1"]
    assert (s1["sessions"], s1["queue"], s1["total_sessions"], s1["weight"]) == (7, 2, 100, 9)
    assert (s1["base_status"], s1["steady"], s1["admin_state"]) == ("UP", False, "drain")
    assert s1["response_time_ms"] is None  # absent column reads as None, not a crash


@pytest.mark.parametrize("text", ["", "No such proxy.\n\n", "Unknown command\n"])
def test_parse_show_stat_refuses_non_csv(text):
    with pytest.raises(LBCommandError):
        haproxy_parse.parse_show_stat(text)


@pytest.mark.parametrize(
    "status, base, steady, up",
    [
        ("UP", "UP", True, True),
        ("UP 1/3", "UP", False, False),
        ("UP 2/3", "UP", False, False),
        ("DOWN", "DOWN", True, False),
        ("DOWN 1/2", "DOWN", False, False),
        ("no check", "no check", True, True),
        ("DRAIN", "DRAIN", True, False),
        ("DRAIN 1/2", "DRAIN", False, False),
        ("DRAIN (agent)", "DRAIN", True, False),
        ("NOLB", "NOLB", True, False),
        ("MAINT", "MAINT", True, False),
        ("MAINT (resolution)", "MAINT", True, False),
        ("MAINT (via be/srv)", "MAINT", True, False),
        ("", "UNKNOWN", False, False),
    ],
)
def test_status_normalisation(status, base, steady, up):
    assert haproxy_parse.normalise_status(status) == (base, steady)
    assert haproxy_parse.is_up({"status": status}) is up


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"status": "UP", "admin_state": "ready"}, True),
        ({"status": "no check", "admin_state": "ready"}, True),
        ({"status": "UP 1/2", "admin_state": "ready"}, False),
        ({"status": "UP", "admin_state": "drain"}, False),
        ({"status": "MAINT", "admin_state": "maint"}, False),
        # a row from a module result: its healthy flag is is_up of its status already
        ({"healthy": True, "admin_state": "ready"}, True),
        ({"healthy": False, "status": "UP", "admin_state": "ready"}, False),
    ],
)
def test_in_rotation_is_ready_and_up(server, expected):
    assert haproxy_parse.in_rotation(server) is expected


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web1", "be_app", "be_api.v2", "api-1:a", "A", "0", "x" * 200, "a.b-c_d:e"])
def test_good_names(name):
    assert haproxy_names.validate_name(name, "server") == name


@pytest.mark.parametrize(
    "name",
    ["", " ", "web1;", "web1; set server be/x state maint", "web 1", "web1\n", "web1\nshow info", "web1\r", "be/srv",
     "wéb1", "web\u00a01", "\u0661", "web1\t", "web1\x00", "$(id)", "web1'", None, 5, b"web1"],
)  # fmt: skip
def test_bad_names_are_refused(name):
    with pytest.raises(ValidationError) as info:
        haproxy_names.validate_name(name, "server")
    assert "Nothing was sent" in info.value.msg


@pytest.mark.parametrize(
    "text, kind, target",
    [
        ("/run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock"),
        ("tcp://127.0.0.1:9999", "tcp", ("127.0.0.1", 9999)),
        ("tcp://lb1.example.com:9999", "tcp", ("lb1.example.com", 9999)),
        ("tcp://[::1]:9999", "tcp", ("::1", 9999)),
    ],
)
def test_parse_address(text, kind, target):
    address = haproxy_names.parse_address(text)
    assert address.kind == kind
    assert (address.path if kind == "unix" else (address.host, address.port)) == target


@pytest.mark.parametrize(
    "text",
    ["", "admin.sock", "tcp://", "tcp://host", "tcp://host:0", "tcp://host:70000", "tcp://:9999", "udp://h:1",
     "tcp://h;x:1", "/run/x\nsock", None],
)  # fmt: skip
def test_parse_address_refuses(text):
    with pytest.raises(ValidationError):
        haproxy_names.parse_address(text)


def test_duplicate_sockets_are_refused():
    with pytest.raises(ValidationError, match="twice"):
        haproxy_names.validate_sockets(["/a.sock", "/a.sock"])
    with pytest.raises(ValidationError, match="empty"):
        haproxy_names.validate_sockets([])


@pytest.mark.parametrize("weight", [-1, 257, True, "10", 1.5, None])
def test_bad_weights(weight):
    with pytest.raises(ValidationError):
        haproxy_names.validate_weight(weight)


# ---------------------------------------------------------------------------------------------
# client: commands, answers, counters
# ---------------------------------------------------------------------------------------------


def test_invalid_input_sends_zero_commands():
    transport = ScriptedTransport({})
    client = haproxy_client.HAProxyRuntime("/x.sock", transport=transport)
    for call in (
        lambda: client.set_server_state("be_app", "web1;show info", "drain"),
        lambda: client.set_server_state("be app", "web1", "drain"),
        lambda: client.set_server_state("be_app", "web1", "up"),
        lambda: client.set_server_weight("be_app", "web1", 300),
        lambda: client.shutdown_sessions("be_app", "web1\nshutdown sessions server be_app/web2"),
        lambda: client.get_server("", "web1"),
        lambda: client.execute("show info; show stat"),
        lambda: client.execute("show info\nshow stat"),
    ):
        with pytest.raises(ValidationError):
            call()
    assert len(transport.sent) == 0
    assert transport.sent == []


def test_commands_are_exact_and_counted():
    ok = fixture("answer_set_ok.txt")
    transport = ScriptedTransport(
        {
            "set server be_api.v2/api-1:a state drain": ok,
            "set server be_api.v2/api-1:a weight 0": fixture("answer_set_weight_ok.txt"),
            "shutdown sessions server be_api.v2/api-1:a": fixture("answer_shutdown_sessions_ok.txt"),
        }
    )
    client = haproxy_client.HAProxyRuntime("/x.sock", transport=transport)
    client.set_server_state("be_api.v2", "api-1:a", "drain")
    client.set_server_weight("be_api.v2", "api-1:a", 0)
    client.shutdown_sessions("be_api.v2", "api-1:a")
    assert len(transport.sent) == 3
    assert transport.sent == [
        "set server be_api.v2/api-1:a state drain",
        "set server be_api.v2/api-1:a weight 0",
        "shutdown sessions server be_api.v2/api-1:a",
    ]


@pytest.mark.parametrize(
    "answer_fixture, error, words",
    [
        ("answer_set_no_such_server.txt", NotFoundError, "No such server."),
        ("answer_set_no_such_backend.txt", NotFoundError, "No such backend."),
        ("answer_user_level_set.txt", LBPermissionError, "not an admin-level socket"),
        ("answer_operator_level_set.txt", LBPermissionError, "not an admin-level socket"),
        ("answer_weight_too_big.txt", LBCommandError, "Absolute weight can only be between 0 and 256"),
        ("answer_bad_state.txt", LBCommandError, "expects 'ready', 'drain' and 'maint'"),
    ],
)
def test_non_empty_answers_are_errors(answer_fixture, error, words):
    transport = ScriptedTransport({"set server be_app/web1 state drain": fixture(answer_fixture)})
    client = haproxy_client.HAProxyRuntime("/x.sock", transport=transport)
    with pytest.raises(error) as info:
        client.set_server_state("be_app", "web1", "drain")
    assert words in info.value.msg
    assert "/x.sock" in info.value.msg


def test_unknown_backend_on_reads_is_not_found():
    transport = ScriptedTransport(
        {
            "show stat nope 6 -1": fixture("answer_show_stat_unknown_backend.txt"),
            "show servers state nope": fixture("answer_show_servers_state_unknown_backend.txt"),
        }
    )
    client = haproxy_client.HAProxyRuntime("/x.sock", transport=transport)
    with pytest.raises(NotFoundError, match="No such proxy"):
        client.get_backends("nope")
    with pytest.raises(NotFoundError, match="Can't find backend"):
        client.show_servers_state("nope")


def recorded_client():
    return haproxy_client.HAProxyRuntime(
        "/x.sock",
        transport=ScriptedTransport(
            {
                "show stat be_app 6 -1": fixture("show_stat_be_app_servers_and_backend.txt"),
                "show stat be_app 4 -1": fixture("show_stat_be_app_servers.txt"),
                "show servers state be_app": fixture("show_servers_state_be_app.txt"),
                "show cli level": fixture("show_cli_level_admin.txt"),
            }
        ),
    )


def test_get_server_and_unknown_server():
    client = recorded_client()
    web2 = client.get_server("be_app", "web2")
    assert (web2["backend"], web2["server"], web2["weight"], web2["admin_state"]) == ("be_app", "web2", 50, "ready")
    with pytest.raises(NotFoundError) as info:
        client.get_server("be_app", "web9")
    assert "web1, web2, web3, web4" in info.value.msg
    assert client.server_stat("be_app", "web3")["status"] == "no check"
    with pytest.raises(NotFoundError):
        client.server_stat("be_app", "web9")


@pytest.mark.parametrize(
    "level_fixture, level, admin_ok",
    [("show_cli_level_admin.txt", "admin", True), ("show_cli_level_user.txt", "user", False),
     ("show_cli_level_oper.txt", "operator", False), ("answer_unknown_command.txt", None, True)],
)  # fmt: skip
def test_cli_level(level_fixture, level, admin_ok):
    client = haproxy_client.HAProxyRuntime(
        "/x.sock", transport=ScriptedTransport({"show cli level": fixture(level_fixture)})
    )
    assert client.cli_level() == level
    if admin_ok:
        client.require_admin()
    else:
        with pytest.raises(LBPermissionError, match="%s-level socket" % level):
            client.require_admin()


def test_user_level_socket_still_reads():
    rows = haproxy_parse.parse_show_stat(fixture("show_stat_user_level.txt"))
    assert {r["svname"] for r in rows} == {"web1", "web2", "web3", "web4"}
    assert haproxy_parse.parse_servers_state(fixture("answer_user_level_show_servers_state.txt"))[0] == "1"


# ---------------------------------------------------------------------------------------------
# transport: real sockets, error classification
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def short_tmp():
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="zdr") as path:
        yield path


def serve_once(path, answer):
    """A one-shot unix socket server: reads one line, answers, closes. Returns (thread, received)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = []

    def run():
        conn, _peer = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(answer.encode())
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, received


def test_transport_round_trip_over_unix_socket(short_tmp):
    path = os.path.join(short_tmp, "admin.sock")
    thread, received = serve_once(path, fixture("show_stat_be_app_servers.txt"))
    recording = RecordingTransport(haproxy_transport.SocketTransport(path, timeout=5))
    client = haproxy_client.HAProxyRuntime(path, transport=recording)
    rows = client.show_stat("be_app")
    thread.join(5)
    assert received == [b"show stat be_app 4 -1\n"]
    assert [r["svname"] for r in rows] == ["web1", "web2", "web3", "web4"]
    assert len(recording.sent) == 1


def test_transport_round_trip_over_tcp():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def run():
        conn, _peer = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(fixture("answer_set_ok.txt").encode())
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    haproxy_client.HAProxyRuntime("tcp://127.0.0.1:%d" % port, timeout=5).set_server_state("be_app", "web1", "ready")
    thread.join(5)


def test_missing_socket_names_the_path(short_tmp):
    path = os.path.join(short_tmp, "nope", "admin.sock")
    with pytest.raises(LBUnreachableError) as info:
        haproxy_client.HAProxyRuntime(path).cli_level()
    assert path in info.value.msg and "does not exist" in info.value.msg


def test_stale_unix_socket_is_refused(short_tmp):
    path = os.path.join(short_tmp, "stale.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)  # bound, never listening: what a crashed HAProxy leaves behind
    try:
        with pytest.raises(LBUnreachableError, match="Connection refused.*nothing listens"):
            haproxy_client.HAProxyRuntime(path).cli_level()
    finally:
        sock.close()


def test_regular_file_is_not_a_socket(short_tmp):
    path = os.path.join(short_tmp, "file")
    with open(path, "w") as handle:
        handle.write("x")
    with pytest.raises(LBUnreachableError, match="not a socket"):
        haproxy_client.HAProxyRuntime(path).cli_level()


def test_tcp_refused():
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(LBUnreachableError, match="Connection refused by tcp://127.0.0.1:%d" % port):
        haproxy_client.HAProxyRuntime("tcp://127.0.0.1:%d" % port).cli_level()


class _FailingSocket:
    def __init__(self, error):
        self.error = error

    def __call__(self, *args, **kwargs):
        return self

    def settimeout(self, value):
        pass

    def connect(self, address):
        raise self.error

    def close(self):
        pass


@pytest.mark.parametrize(
    "error, exc_type, words",
    [
        (PermissionError(errno.EACCES, "Permission denied"), LBPermissionError, "Permission denied opening"),
        (socket.timeout("timed out"), LBUnreachableError, "Timed out after 10.0s"),
        (OSError(errno.ENOTDIR, "Not a directory"), LBUnreachableError, "Not a directory"),
    ],
)
def test_connect_errors_are_classified(monkeypatch, error, exc_type, words):
    monkeypatch.setattr(haproxy_transport.socket, "socket", _FailingSocket(error))
    with pytest.raises(exc_type) as info:
        haproxy_client.HAProxyRuntime("/run/haproxy/admin.sock").cli_level()
    assert words in info.value.msg
    assert "/run/haproxy/admin.sock" in info.value.msg


def test_read_timeout_is_unreachable(short_tmp):
    path = os.path.join(short_tmp, "slow.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)  # accepts (kernel backlog) but never answers
    try:
        with pytest.raises(LBUnreachableError, match="did not finish answering"):
            haproxy_client.HAProxyRuntime(path, timeout=0.05).cli_level()
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# transport: hostile peers (one deadline per command, a cap on the answer)
# ---------------------------------------------------------------------------------------------


class HostileRuntimeServer:
    """A fake runtime API on a unix socket or on 127.0.0.1: reads one command, then trickles or floods.

    Every loop is bounded, and the thread stops when the client goes away or on close().
    """

    TRICKLE_BYTES = 8  # one byte a second: a client without an overall deadline reads for 8 s
    FLOOD_CHUNKS = 1024  # 64 KiB each: at most 64 MiB

    def __init__(self, behaviour, unix_path=None):
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.sent = 0
        if unix_path:
            self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.server.bind(unix_path)
            self.address = unix_path
        else:
            self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.server.bind(("127.0.0.1", 0))
            self.address = "tcp://127.0.0.1:%d" % self.server.getsockname()[1]
        self.server.listen(1)
        self.server.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _peer = self.server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(1024)
                if self.behaviour == "trickle":
                    for _i in range(self.TRICKLE_BYTES):
                        if self.stop.wait(1.0):
                            return
                        conn.sendall(b"1")
                        self.sent += 1
                else:
                    chunk = b"x" * 65536
                    for _i in range(self.FLOOD_CHUNKS):
                        if self.stop.is_set():
                            return
                        conn.sendall(chunk)
                        self.sent += len(chunk)
            except OSError:
                return  # the client gave up: what the tests want

    def close(self):
        self.stop.set()
        self.server.close()
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture(params=["unix", "tcp"])
def hostile(request, short_tmp):
    servers = []

    def start(behaviour):
        path = os.path.join(short_tmp, "admin.sock") if request.param == "unix" else None
        servers.append(HostileRuntimeServer(behaviour, path))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_trickling_socket_fails_at_the_command_deadline(hostile):
    server = hostile("trickle")
    timeout = 2.5
    start = time.monotonic()
    with pytest.raises(LBUnreachableError) as info:
        haproxy_client.HAProxyRuntime(server.address, timeout=timeout).cli_level()
    elapsed = time.monotonic() - start
    # Each byte arrives well within the timeout; only a deadline across all reads ends this.
    assert timeout - 0.1 <= elapsed < timeout + 1.0, elapsed
    assert "did not finish answering 'show cli level' within 2.5s" in info.value.msg
    assert server.address in info.value.msg
    assert server.sent < server.TRICKLE_BYTES


def test_a_flooding_socket_fails_at_the_size_cap(hostile):
    server = hostile("flood")
    with pytest.raises(LBCommandError) as info:
        haproxy_client.HAProxyRuntime(server.address, timeout=20).cli_level()
    assert "sent more than 16 MiB in answer to 'show cli level'; stopped reading" in info.value.msg
    assert server.address in info.value.msg
    assert haproxy_transport.DEFAULT_MAX_RESPONSE == 16 * 1024 * 1024
    # The client stopped reading soon after the cap (the kernel buffers a few MiB at most).
    server.stop.set()
    server.thread.join(15)
    assert server.sent < server.FLOOD_CHUNKS * 65536


def test_answer_cap_counts_bytes_exactly(short_tmp):
    """An answer of exactly max_response bytes passes; one byte more fails."""
    path = os.path.join(short_tmp, "admin.sock")
    thread, _received = serve_once(path, "x" * 100)
    assert haproxy_transport.SocketTransport(path, timeout=5, max_response=100).exchange("show info") == "x" * 100
    thread.join(5)
    os.unlink(path)
    thread, _received = serve_once(path, "x" * 101)
    with pytest.raises(LBCommandError, match="sent more than 100 bytes"):
        haproxy_transport.SocketTransport(path, timeout=5, max_response=100).exchange("show info")
    thread.join(5)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:99\u00b2", "tcp://127.0.0.1:\u0669\u0669"])
def test_a_port_in_non_ascii_digits_is_refused_cleanly(address):
    # str.isdigit() accepts superscripts and Arabic-Indic digits; int() then crashes or reads another number.
    with pytest.raises(ValidationError):
        haproxy_names.parse_address(address)
