"""Artifacts that are not on the host: a path on the controller and an s3:// object (moto server), copied by the
app_prepare action plugin only to the hosts that unpack, verified on the controller and again on the host, through
the real rolling_update playbook on the local demo fleet."""

import glob
import json
import logging
import os
import re

import pytest

from conftest import destroy_fleet, make_fleet
from tests.fixtures.fleet.loadgen import LoadGenerator
from tests.fixtures.fleet.playbook import run_playbook, versions, write_inventory
from tests.fixtures.fleet.release import build_artifact
from tests.fixtures.fleet.sampler import RotationSampler

pytestmark = pytest.mark.integration

RATE = 80.0
TASK = "Read the host and unpack"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "moto-secret-never-shown",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def admin_states(fleet):
    """(server, operational state, admin state, weight) of every server, from ``show servers state``."""
    rows = [line.split() for line in fleet.admin("show servers state app").splitlines()[2:] if line.strip()]
    return sorted((r[3], r[5], r[6], r[7]) for r in rows)


def remote_copies():
    """Copies the action plugin left in Ansible's remote temporary directories (local connection: this machine)."""
    return glob.glob(os.path.expanduser("~/.ansible/tmp/*/artifact-*"))


def prepare_results(stdout):
    """{host: result of the prepare task} from a -v run (the default callback prints each result as JSON)."""
    out = {}
    section = stdout.split("TASK [zerodowntime.rollout.rolling_update : %s" % TASK, 1)
    if len(section) < 2:
        return out
    body = section[1].split("\nTASK [", 1)[0]
    for match in re.finditer(r"^(?:ok|changed|failed|fatal): \[([^\]]+)\](?: => |: FAILED! => )(\{.*\})$", body, re.M):
        out[match.group(1)] = json.loads(match.group(2))
    return out


@pytest.fixture
def fleet2():
    fleet, directory = make_fleet(hosts=2, version="v1", first_address="127.0.0.171", retries=0)
    try:
        yield fleet
    finally:
        destroy_fleet(fleet, directory)


def rollout(fleet, tmp_path, extra, load=False, env=None, args=()):
    inv = write_inventory(fleet, str(tmp_path / "inventory.yml"))
    sampler = RotationSampler(fleet.data["admin_socket"], fleet.data["backend"], interval=0.1).start()
    loadgen = LoadGenerator(fleet.data["frontend_url"] + "/version", rate=RATE).start() if load else None
    try:
        proc = run_playbook(
            inv, {"rollout_serial": 1, "rolling_update_health_interval": 0.2, **extra}, args=["-v", *args], env=env
        )
    finally:
        summary = loadgen.stop() if loadgen else None
        sampler.stop()
    return proc, summary, sampler


def current_of(host):
    return os.readlink(os.path.join(host["deploy_path"], "current"))


def test_controller_path_under_load_copies_verifies_and_cleans_up(fleet2, tmp_path):
    controller_dir = tmp_path / "controller-only"
    artifact, sha = build_artifact("v2", str(controller_dir))
    names = [h["name"] for h in fleet2.data["hosts"]]
    before = set(remote_copies())
    proc, summary, sampler = rollout(
        fleet2,
        tmp_path,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rolling_update_artifact_from": "controller",
        },
        load=True,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert summary.failed == 0 and summary.total >= RATE * 2, summary.format()
    assert versions(fleet2) == dict.fromkeys(names, "v2")
    for host in fleet2.data["hosts"]:
        assert current_of(host).rstrip("/").endswith("releases/v2")
        release = os.path.join(host["deploy_path"], "releases", "v2")
        with open(os.path.join(release, "VERSION")) as handle:
            assert handle.read().strip() == "v2"
        assert os.path.isfile(os.path.join(release, "app.py"))
    results = prepare_results(proc.stdout)
    assert set(results) == set(names), proc.stdout[-4000:]
    for name in names:
        source = results[name]["source"]
        assert source["copied"] is True and source["checksum"] == "sha256:" + sha, source
        assert "copied %s" % artifact in results[name]["msg"]
        assert "src_needed" not in results[name] and "copy_room" not in results[name]
    assert sampler.max_out_of_rotation() == 1
    assert set(remote_copies()) <= before  # the copies on the host were removed


def test_checksum_mismatch_on_the_controller_is_refused_before_any_drain(fleet2, tmp_path):
    artifact, _sha = build_artifact("v2", str(tmp_path / "controller-only"))
    haproxy_before = admin_states(fleet2)
    links = {h["name"]: current_of(h) for h in fleet2.data["hosts"]}
    proc, _summary, sampler = rollout(
        fleet2,
        tmp_path,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + "0" * 64,
            "rolling_update_artifact_from": "controller",
        },
    )
    assert proc.returncode != 0
    assert "checksum mismatch for %s on the controller" % artifact in proc.stdout, proc.stdout[-4000:]
    assert admin_states(fleet2) == haproxy_before and sampler.max_out_of_rotation() == 0
    assert {h["name"]: current_of(h) for h in fleet2.data["hosts"]} == links
    assert not [h for h in fleet2.data["hosts"] if os.path.exists(os.path.join(h["deploy_path"], "releases", "v2"))]
    results = prepare_results(proc.stdout)
    assert len(results) == 2, proc.stdout[-4000:]
    for result in results.values():  # the callback leaves "failed" out of what it prints
        assert result["msg"].startswith("checksum mismatch") and result["source"]["copied"] is False, result


def test_a_host_that_runs_the_release_gets_no_copy(fleet2, tmp_path):
    hosts = fleet2.data["hosts"]
    done, todo = hosts[0]["name"], hosts[1]["name"]
    fleet2.deploy(done, "v2")
    fleet2.stop_host(done)
    fleet2.start_host(done)
    fleet2.wait_ready()
    artifact, sha = build_artifact("v2", str(tmp_path / "controller-only"))
    proc, _summary, _sampler = rollout(
        fleet2,
        tmp_path,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": artifact,
            "rolling_update_artifact_checksum": "sha256:" + sha,
            "rolling_update_artifact_from": "controller",
        },
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    results = prepare_results(proc.stdout)
    assert results[done]["source"]["copied"] is False and results[done]["on_target"] is True, results[done]
    assert results[done]["changed"] is False
    assert results[todo]["source"]["copied"] is True, results[todo]
    assert versions(fleet2) == {done: "v2", todo: "v2"}


@pytest.fixture
def moto_s3():
    """A moto server on a free port (always stopped), with a request counter per path."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.fixtures.fleet.system import free_port

    gets = []

    class Count(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if '"GET /' in text:
                gets.append(text)

    logger = logging.getLogger("werkzeug")
    handler = Count(level=logging.INFO)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        endpoint = "http://127.0.0.1:%d" % server._port  # pylint: disable=protected-access
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        yield endpoint, client, gets
    finally:
        server.stop()
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_s3_artifact_is_fetched_once_on_the_controller_and_copied(fleet2, tmp_path, moto_s3):
    endpoint, client, gets = moto_s3
    artifact, sha = build_artifact("v2", str(tmp_path / "build"))
    client.create_bucket(Bucket="releases")
    with open(artifact, "rb") as handle:
        client.put_object(Bucket="releases", Key="app/app-v2.tar.gz", Body=handle.read())
    os.unlink(artifact)  # only in S3 now
    del gets[:]
    names = [h["name"] for h in fleet2.data["hosts"]]
    settings = {
        "rolling_update_version": "v2",
        "rolling_update_artifact": "s3://releases/app/app-v2.tar.gz",
        "rolling_update_artifact_checksum": "sha256:" + sha,
        "rolling_update_artifact_s3_endpoint_url": endpoint,
        "rolling_update_aws_region": "us-east-1",
    }
    # Check mode: nothing fetched or copied, and the result says what would be.
    check, _summary, _sampler = rollout(fleet2, tmp_path, settings, env=AWS_ENV, args=["--check"])
    planned = prepare_results(check.stdout)
    assert set(planned) == set(names), check.stdout[-4000:]
    for result in planned.values():
        assert result["source"]["would_copy"] is True and result["source"]["copied"] is False, result
        assert result["unpack"].startswith("would fetch s3://releases/app/app-v2.tar.gz on the controller"), result
    assert not [g for g in gets if "/releases/" in g], gets
    assert not [h for h in fleet2.data["hosts"] if os.path.exists(os.path.join(h["deploy_path"], "releases", "v2"))]

    proc, _summary, sampler = rollout(fleet2, tmp_path, settings, env=AWS_ENV)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert versions(fleet2) == dict.fromkeys(names, "v2")
    for host in fleet2.data["hosts"]:
        assert current_of(host).rstrip("/").endswith("releases/v2")
    results = prepare_results(proc.stdout)
    assert all(results[n]["source"]["copied"] and results[n]["source"]["kind"] == "s3" for n in names), results
    # Fetched once for the run (the second host used the controller's verified copy).
    assert [r["source"]["fetched"] for r in results.values()].count(True) == 1, results
    object_gets = [g for g in gets if "/releases/app/app-v2.tar.gz" in g]
    assert len(object_gets) == 1, gets
    assert "moto-secret-never-shown" not in proc.stdout + proc.stderr
    assert sampler.max_out_of_rotation() == 1


def test_s3_without_checksum_is_refused_before_any_drain(fleet2, tmp_path, moto_s3):
    endpoint, _client, gets = moto_s3
    haproxy_before = admin_states(fleet2)
    proc, _summary, sampler = rollout(
        fleet2,
        tmp_path,
        {
            "rolling_update_version": "v2",
            "rolling_update_artifact": "s3://releases/app/app-v2.tar.gz",
            "rolling_update_artifact_s3_endpoint_url": endpoint,
        },
        env=AWS_ENV,
    )
    assert proc.returncode != 0
    # Refused by the role's preflight, before the lock is taken (app_prepare would refuse it too).
    assert "is an s3:// URL: give rolling_update_artifact_checksum" in proc.stdout, proc.stdout[-4000:]
    assert admin_states(fleet2) == haproxy_before and sampler.max_out_of_rotation() == 0
    assert not [g for g in gets if "/releases/" in g]


def test_controller_url_is_downloaded_once_by_the_controller_and_copied(fleet2, tmp_path):
    """artifact_from=controller with an http URL (hosts without a route to the artifact store): the controller
    downloads it once for every host (the cache, keyed by the checksum), verifies it and copies it."""
    import http.server
    import threading

    served = tmp_path / "store"
    artifact, sha = build_artifact("v2", str(served))
    gets = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's name)
            gets.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/%s" % (server.server_address[1], os.path.basename(artifact))
    try:
        proc, _summary, _sampler = rollout(
            fleet2,
            tmp_path,
            {
                "rolling_update_version": "v2",
                "rolling_update_artifact": url,
                "rolling_update_artifact_checksum": "sha256:" + sha,
                "rolling_update_artifact_from": "controller",
            },
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    names = [h["name"] for h in fleet2.data["hosts"]]
    assert versions(fleet2) == dict.fromkeys(names, "v2")
    results = prepare_results(proc.stdout)
    assert set(results) == set(names), proc.stdout[-4000:]
    for name in names:
        source = results[name]["source"]
        assert (source["kind"], source["copied"], source["checksum"]) == ("url", True, "sha256:" + sha), source
    # one download for both hosts, by the controller (a host would have made its own)
    assert gets == ["/" + os.path.basename(artifact)], gets
    assert sum(results[name]["source"]["fetched"] for name in names) == 1, results
