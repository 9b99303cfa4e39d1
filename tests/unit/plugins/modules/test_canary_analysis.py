# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument handling of the canary_analysis module: main() in-process, counters scripted."""

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from ansible.module_utils.common.parameters import PASS_VARS

from ansible_collections.zerodowntime.rollout.plugins.modules import canary_analysis
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_docs import documented_options
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import patch_module_args, run_main


def srv(ok, err=0):
    responses = {"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": err, "other": 0}
    return {
        "responses": responses,
        "total_sessions": ok + err,
        "response_time_ms": 1,
        "healthy": True,
        "status": "UP",
        "admin_state": "ready",
    }


@pytest.fixture
def counters(monkeypatch):
    """Scripted reads: everything at 0, then web1 and web2 at ``end``; records make_reader's arguments."""
    state = {"end": {"web1": srv(100), "web2": srv(100)}, "reader_args": None, "reads": 0}

    def make_reader(sockets, backend):
        state["reader_args"] = (sockets, backend)
        first = state["reads"] + 1

        def read():
            state["reads"] += 1
            if state["reads"] == first:
                return {sockets[0]: {"web1": srv(0), "web2": srv(0)}}
            return {sockets[0]: state["end"]}

        return read

    monkeypatch.setattr(canary_analysis, "make_reader", make_reader)
    return state


def run_module(args, capsys):
    return run_main(canary_analysis, args, capsys)


def test_argument_spec_matches_documentation():
    spec = canary_analysis.argument_spec()
    doc, options = yaml.safe_load(canary_analysis.DOCUMENTATION), documented_options(canary_analysis)
    assert sorted(spec) == sorted(options)
    for name, opt in options.items():
        for key, default in (
            ("type", "str"),
            ("required", False),
            ("default", None),
            ("elements", None),
            ("choices", None),
        ):
            assert spec[name].get(key, default) == opt.get(key, default), (name, key)
    assert doc["attributes"]["check_mode"]["support"] == "full"


def test_pass_is_returned_unchanged_in_check_mode(counters, capsys):
    args = {"backend": "be_app", "canary": ["web1"], "window": 0.01, "min_requests": 10, "_ansible_check_mode": True}
    rc, out = run_module(args, capsys)
    assert rc == 0, out
    assert out["verdict"] == "pass" and out["changed"] is False
    assert out["baseline"] == ["web2"]
    assert counters["reader_args"] == (["/run/haproxy/admin.sock"], "be_app")


def test_fail_verdict_fails_the_task_unless_told_otherwise(counters, capsys):
    counters["end"] = {"web1": srv(70, 30), "web2": srv(100)}
    args = {"backend": "be_app", "canary": ["web1"], "window": 0.01, "min_requests": 10}
    rc, out = run_module(args, capsys)
    assert rc == 1 and out["failed"] and out["changed"] is False
    assert "error_rate: canary 0.3, baseline 0, threshold 0.01" in out["msg"]
    assert out["verdict"] == "fail" and out["metrics"]["error_rate"]["passed"] is False
    rc, out = run_module(dict(args, fail_on_verdict=False), capsys)
    assert rc == 0 and out["verdict"] == "fail" and not out.get("failed")


def test_prometheus_queries_need_prometheus_url(counters, capsys):
    rc, out = run_module({"backend": "be_app", "canary": ["web1"], "prometheus_queries": {"e": "x{server}"}}, capsys)
    assert rc == 1 and "prometheus_url" in out["msg"]
    assert counters["reads"] == 0


def test_bad_canary_name_is_refused_before_reading(counters, capsys):
    rc, out = run_module({"backend": "be_app", "canary": ["web1;show info"]}, capsys)
    assert rc == 1 and "Invalid canary server name" in out["msg"]
    assert counters["reads"] == 0


def server_info(host, ok, err=0):
    servers = {"web1": srv(ok, err), "web2": srv(ok)}
    return {
        "item": host,
        "sockets": [{"socket": "/run/haproxy/admin.sock", "backends": {"be_app": {"servers": servers}}}],
    }


def test_counters_are_analysed_without_reading_any_socket(counters, capsys):
    args = {
        "backend": "be_app",
        "canary": ["web1"],
        "window": 4,
        "min_requests": 10,
        "counters": {
            "start": [server_info("lb1", 0), server_info("lb2", 0)],
            "end": [server_info("lb1", 92, 8), server_info("lb2", 100)],
        },
        "fail_on_verdict": False,
    }
    rc, out = run_module(args, capsys)
    assert rc == 0, out
    assert counters["reader_args"] is None and counters["reads"] == 0
    assert out["verdict"] == "fail" and out["window"] == 4.0
    assert out["error_budget"]["requests"] == 200 and out["error_budget"]["errors"] == 8
    assert "error budget: 8 5xx of 2 allowed (max_error_rate 0.01 x 200 canary requests), 400% used" in out["msg"]
    rc, out = run_module(dict(args, interval=1), capsys)
    assert rc == 1 and "mutually exclusive" in out["msg"]


def test_confidence_is_passed_through(counters, capsys):
    counters["end"] = {"web1": srv(98, 2), "web2": srv(100)}
    args = {"backend": "be_app", "canary": ["web1"], "window": 0.01, "min_requests": 10, "max_window": 0.01}
    rc, out = run_module(args, capsys)
    assert rc == 0 and out["verdict"] == "pass" and out["settled"] is False  # 2 in 100: not significant
    rc, out = run_module(dict(args, confidence=0), capsys)
    assert rc == 1 and out["verdict"] == "fail"


# --------------------------------------------------------------------------- no credentials in any output

USER = "deployer"
PASSWORD = "s3cr3tpw"


class PromHandler(BaseHTTPRequestHandler):
    """A Prometheus behind basic auth: 401 with a challenge, then one sample of 0.5 for every query."""

    def do_GET(self):
        auth = self.headers.get("Authorization")
        self.server.seen.append(auth)
        expected = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if auth != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="prometheus"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PromHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_raw(args, capsys):
    """main() with args: (exit code, parsed result, the result's JSON text exactly as printed)."""
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        canary_analysis.main()
    text = capsys.readouterr().out
    return info.value.code, json.loads(text), text


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prometheus_args(port):
    args = {
        "backend": "be_app",
        "canary": ["web1"],
        "window": 4,
        "min_requests": 10,
        "counters": {
            "start": [server_info("lb1", 0)],
            "end": [server_info("lb1", 100)],
        },
        "prometheus_url": "http://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, port),
        "prometheus_queries": {"errors": 'rate(errors{instance="{server}"}[1m])'},
        "prometheus_timeout": 5,
    }
    if "inject_invocation" in PASS_VARS:  # ansible-core >= 2.19 adds the invocation only when asked to
        args["_ansible_inject_invocation"] = True
    return args


def test_prometheus_credentials_are_used_but_never_returned(prometheus, capsys):
    port = prometheus.server_address[1]
    rc, out, text = run_raw(prometheus_args(port), capsys)
    assert rc == 0, out
    assert out["verdict"] == "pass" and out["metrics"]["prometheus_errors"]["canary"] == 0.5
    assert any(seen and seen.startswith("Basic ") for seen in prometheus.seen)  # the credentials were used
    assert USER not in text and PASSWORD not in text
    assert out["invocation"]["module_args"]["prometheus_url"] == "http://***@127.0.0.1:%d/" % port


def test_a_prometheus_failure_shows_no_credentials(capsys):
    port = closed_port()
    rc, out, text = run_raw(prometheus_args(port), capsys)
    assert rc == 1 and out["failed"]
    assert "Prometheus query" in out["msg"] and "at http://***@127.0.0.1:%d/ failed" % port in out["msg"]
    assert USER not in text and PASSWORD not in text
