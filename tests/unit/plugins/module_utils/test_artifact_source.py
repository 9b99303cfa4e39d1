# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts from the controller: where src is read, the copy's size rules, the S3 fetch (moto server), the
controller's cache (one fetch for parallel forks), and prepare_app's "src needed" answer that writes nothing."""

import hashlib
import io
import os
import stat
import threading
import time
from collections import namedtuple

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import (
    ArtifactSourceError,
    check_copy_fits,
    copy_room,
    file_name,
    parse_s3_url,
    require_checksum,
    resolve,
    stat_controller_file,
    verify_controller_file,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._prepare import prepare_app
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._artifact_cache import ArtifactCache, private_dir
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._deadline import run_with_deadline
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.moto_server import free_port, moto_server
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.release_archive import Probe, archive

SHA = "sha256:" + "a" * 64


# -- where src is read --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src, artifact_from, expected",
    [
        ("s3://bucket/app/app-v2.tar.gz", "auto", ("controller", "s3")),
        ("s3://bucket/app/app-v2.tar.gz", "controller", ("controller", "s3")),
        ("/srv/artifacts/app.tar.gz", "auto", ("host", "path")),
        ("/srv/artifacts/app.tar.gz", "controller", ("controller", "path")),
        ("https://example.com/app.tar.gz", "auto", ("host", "url")),
        ("https://example.com/app.tar.gz", "controller", ("controller", "url")),
        ("S3://bucket/key.zip", None, ("controller", "s3")),
    ],
)
def test_resolve(src, artifact_from, expected):
    assert resolve(src, artifact_from) == expected


def test_s3_on_the_host_is_refused_with_a_clear_message():
    with pytest.raises(ValidationError, match=r"fetched on the controller.*artifact_from.*auto or controller"):
        resolve("s3://bucket/key.tar.gz", "host")


@pytest.mark.parametrize("src", ["s3://bucket", "s3://bucket/", "s3://b/key", "s3://bucket/key?versionId=1", "s3:/x"])
def test_bad_s3_urls_are_refused(src):
    with pytest.raises(ValidationError):
        resolve(src, "auto") if src != "s3:/x" else parse_s3_url(src)


def test_relative_path_and_bad_choice_are_refused():
    with pytest.raises(ValidationError, match="absolute path"):
        resolve("artifacts/app.tar.gz", "controller")
    with pytest.raises(ValidationError, match="artifact_from must be one of"):
        resolve("/a.tar.gz", "nfs")


def test_s3_and_controller_urls_need_a_checksum_unless_unverified():
    with pytest.raises(ValidationError, match="an S3 object: set checksum"):
        require_checksum("s3://b1/k.tar.gz", "s3", "", False)
    with pytest.raises(ValidationError, match="a URL: set checksum"):
        require_checksum("https://u:secret@h/k.tar.gz", "url", None, False)
    assert require_checksum("s3://b1/k.tar.gz", "s3", "", True) is None
    assert require_checksum("/a.tar.gz", "path", None, False) is None
    assert require_checksum("s3://b1/k.tar.gz", "s3", "sha256:" + "A" * 64, False) == SHA


def test_url_secret_never_in_the_message():
    with pytest.raises(ValidationError) as info:
        require_checksum("https://user:hunter2@h/k.tar.gz?token=abc", "url", None, False)
    assert "hunter2" not in info.value.msg and "abc" not in info.value.msg


def test_file_name_keeps_the_extension_and_is_safe():
    assert file_name("s3://b1/dir/app v2.tar.gz", "s3") == "artifact-app_v2.tar.gz"
    assert file_name("https://h/x/app.zip?sig=1", "url") == "artifact-app.zip"
    assert file_name("/srv/../a/.hidden.tgz", "path") == "artifact-hidden.tgz"
    assert "/" not in file_name("s3://b1/../../etc/passwd", "s3")


# -- the controller's file and the copy's rules ----------------------------------------------------------------------


def test_controller_file_checked_and_hashed(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(b"payload")
    good = "sha256:" + hashlib.sha256(b"payload").hexdigest()
    assert stat_controller_file(str(path)) == 7
    assert verify_controller_file(str(path), good, str(path)) == good
    assert verify_controller_file(str(path), None, str(path)) == good
    with pytest.raises(ArtifactSourceError, match="checksum mismatch.*on the controller.*Nothing was copied"):
        verify_controller_file(str(path), SHA, str(path))
    with pytest.raises(ArtifactSourceError, match="does not exist on the controller"):
        stat_controller_file(str(tmp_path / "missing.tar.gz"))
    with pytest.raises(ArtifactSourceError, match="not a regular file"):
        stat_controller_file(str(tmp_path))


StatVfs = namedtuple("StatVfs", "f_frsize f_bsize f_bavail f_blocks")


def test_copy_room_applies_min_free_space_on_the_nearest_existing_directory(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        return StatVfs(4096, 4096, 1000, 10000)  # 4 000 KiB free of 40 000 KiB

    assert copy_room(str(tmp_path / "not" / "yet"), "0", statvfs) == 4096000
    assert seen == [str(tmp_path)]
    assert copy_room(str(tmp_path), "1M", statvfs) == 4096000 - 1048576
    assert copy_room(str(tmp_path), "5%", statvfs) == 4096000 - int(40960000 * 0.05)


def test_copy_refused_above_max_size_or_room():
    check_copy_fits("/a.tar.gz", 100, max_size=100, room=100)
    with pytest.raises(ArtifactSourceError, match="above max_size"):
        check_copy_fits("/a.tar.gz", 101, max_size=100)
    with pytest.raises(ArtifactSourceError, match=r"can take only 50 B while keeping 1G free \(min_free_space\)"):
        check_copy_fits("/a.tar.gz", 101, room=50, min_free_space="1G")


def test_copy_deadline_is_bounded():
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(ArtifactSourceError, match="did not finish within 0.3 s"):
        run_with_deadline(lambda: release.wait(10), 0.3, "/a.tar.gz")
    assert time.monotonic() - start < 2
    release.set()
    assert run_with_deadline(lambda: 42, 5, "x") == 42
    with pytest.raises(KeyError):
        run_with_deadline(lambda: {}["k"], 5, "x")


# -- prepare_app: "src needed", nothing written ------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path):
    root = str(tmp_path / "app")
    manage_release(root, state="active", version="v1", src=archive(tmp_path, "v1"))
    return root


def tree(root):
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            st = os.lstat(full)
            out[full] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_defer_src_answers_src_needed_and_writes_nothing(host, tmp_path):
    before = tree(host)
    out = prepare_app(host, "v2", {"src": "s3://b1/k.tar.gz", "min_free_space": "0"}, Probe(), defer_src=True)
    assert out["src_needed"] is True and out["prepared"] is False and out["changed"] is False
    assert isinstance(out["copy_room"], int) and out["copy_room"] > 0
    assert "archive is needed" in out["msg"]
    assert tree(host) == before


def test_defer_src_room_keeps_min_free_space(host, tmp_path):
    out = prepare_app(host, "v2", {"src": "/x.tar.gz", "min_free_space": "1000T"}, defer_src=True)
    assert out["copy_room"] < 0
    out = prepare_app(host, "v2", {"src": "/x.tar.gz"}, defer_src=True, copy_dir=str(tmp_path / "later"))
    assert out["copy_room"] > 0


def test_defer_src_on_target_or_rolled_back_needs_nothing(host, tmp_path):
    out = prepare_app(host, "v1", {"src": "s3://b1/k.tar.gz"}, Probe(), defer_src=True)
    assert out["src_needed"] is False and out["on_target"] is True and "copy_room" not in out


# -- the S3 fetch, against a moto server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto():
    pytest.importorskip("moto")
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(moto, monkeypatch):
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "moto-secret-value",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    bucket = "unit-%d" % free_port()
    client.create_bucket(Bucket=bucket)
    return moto, client, bucket


def test_fetch_s3_writes_the_object(s3):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._s3 import fetch_s3

    endpoint, client, bucket = s3
    client.put_object(Bucket=bucket, Key="app/v2.tar.gz", Body=b"x" * 200000)
    out = io.BytesIO()
    assert fetch_s3("s3://%s/app/v2.tar.gz" % bucket, out, endpoint_url=endpoint, region="us-east-1") == 200000
    assert out.getvalue() == b"x" * 200000


def test_fetch_s3_refuses_above_max_size_before_the_body(s3):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._s3 import fetch_s3

    endpoint, client, bucket = s3
    client.put_object(Bucket=bucket, Key="big.tar.gz", Body=b"y" * 5000)
    out = io.BytesIO()
    with pytest.raises(RolloutError, match="above max_size"):
        fetch_s3("s3://%s/big.tar.gz" % bucket, out, endpoint_url=endpoint, max_size=1000)
    assert out.getvalue() == b""


def test_fetch_s3_missing_key_says_so_without_secrets(s3):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._s3 import fetch_s3

    endpoint, _client, bucket = s3
    with pytest.raises(ArtifactSourceError) as info:
        fetch_s3("s3://%s/nope.tar.gz" % bucket, io.BytesIO(), endpoint_url=endpoint)
    assert "NoSuchKey" in info.value.msg and "Nothing was copied" in info.value.msg
    assert "moto-secret-value" not in info.value.msg


class _SlowBody:
    def __init__(self):
        self.closed = threading.Event()

    def read(self, amount):
        self.closed.wait(0.2)
        if self.closed.is_set():
            raise ValueError("closed")
        return b"z"

    def close(self):
        self.closed.set()


class _SlowClient:
    def __init__(self):
        self.body = _SlowBody()

    def get_object(self, Bucket, Key):  # noqa: N803 - boto3's names
        return {"Body": self.body, "ContentLength": 10**6}


def test_fetch_s3_trickle_is_cut_at_the_deadline():
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._s3 import fetch_s3

    client = _SlowClient()
    start = time.monotonic()
    with pytest.raises(ArtifactSourceError, match=r"did not finish within 1 s \(download_timeout\)"):
        fetch_s3("s3://bucket/slow.tar.gz", io.BytesIO(), client=client, timeout=1)
    assert time.monotonic() - start < 2.5
    assert client.body.closed.wait(2)


def test_missing_boto3_is_a_clear_message(monkeypatch):
    import builtins

    from ansible_collections.zerodowntime.rollout.plugins.module_utils import _s3

    real = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(ArtifactSourceError, match=r"boto3, which is not installed.*pip install boto3"):
        _s3.make_client()


# -- the controller's cache --------------------------------------------------------------------------------------------


def test_cache_fetches_once_for_parallel_forks(tmp_path):
    data = b"archive bytes" * 1000
    checksum = "sha256:" + hashlib.sha256(data).hexdigest()
    root = str(tmp_path / "cache")
    fetches = []
    gate = threading.Event()

    def fetch(src, handle):
        fetches.append(src)
        gate.wait(5)
        handle.write(data)

    results = []

    def fork():
        results.append(ArtifactCache(root=root, timeout=10).obtain("s3://b1/k.tar.gz", checksum, fetch))

    workers = [threading.Thread(target=fork) for _index in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 5
    while not fetches and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for worker in workers:
        worker.join(10)
    assert len(fetches) == 1
    assert len(results) == 4 and sum(1 for r in results if r[2]) == 1
    final = os.path.join(root, checksum.split(":")[1])
    assert {r[0] for r in results} == {final} and not any(r[3] for r in results)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert sorted(os.listdir(root)) == sorted([os.path.basename(final), os.path.basename(final) + ".lock"])


def test_cache_refuses_a_mismatch_and_keeps_nothing(tmp_path):
    root = str(tmp_path / "cache")
    with pytest.raises(ArtifactSourceError, match="checksum mismatch.*fetched on the controller"):
        ArtifactCache(root=root).obtain("s3://b1/k.tar.gz", SHA, lambda src, handle: handle.write(b"other"))
    assert os.listdir(root) == ["a" * 64 + ".lock"]


def test_cache_unverified_is_a_private_temporary_file(tmp_path):
    root = str(tmp_path / "cache")
    path, checksum, fetched, temporary = ArtifactCache(root=root).obtain(
        "s3://b1/k.tar.gz", None, lambda src, handle: handle.write(b"abc")
    )
    assert fetched and temporary and checksum == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    ArtifactCache.discard(path)
    assert os.listdir(root) == []


def test_cache_fetch_failure_leaves_no_partial_file(tmp_path):
    root = str(tmp_path / "cache")

    def fetch(src, handle):
        handle.write(b"partial")
        raise ArtifactSourceError("boom")

    with pytest.raises(ArtifactSourceError, match="boom"):
        ArtifactCache(root=root).obtain("s3://b1/k.tar.gz", SHA, fetch)
    assert os.listdir(root) == ["a" * 64 + ".lock"]


def test_cache_root_must_be_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(ArtifactSourceError, match="mode 0700"):
        private_dir(str(shared))
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ArtifactSourceError, match="a symlink"):
        private_dir(str(link))
    assert private_dir(str(tmp_path / "fresh")) and stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o700
