# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Fetch an ``s3://bucket/key`` release archive with boto3, bounded like a URL download.

* boto3 is imported only when an S3 object is fetched, and a missing boto3 is a one-line message;
* credentials come from boto3's own chain (environment, shared configuration, instance profile): nothing here
  takes or shows them, and every message goes through :func:`redact_text`;
* one deadline for the whole fetch (the request and the body): the body is read in a worker thread
  (:class:`._download.Transfer`) that the caller waits for until the deadline; at the deadline the stream is
  closed and the worker writes nothing more;
* a size budget, as for a URL download (:class:`._download.Budget`): ``max_size`` and the free space of the
  filesystem written to. The object's ``ContentLength`` above the budget is refused before its body is read, and
  a running byte count stops a body that goes past it.
"""

import contextlib
import os
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import (
    ArtifactSourceError,
    parse_s3_url,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._download import (
    CHUNK,
    Budget,
    DownloadError,
    Transfer,
    parse_timeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import format_bytes


def make_client(region=None, endpoint_url=None, timeout=60):
    """A boto3 S3 client from the controller's own AWS configuration. Raises ArtifactSourceError when boto3 is
    missing."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ArtifactSourceError(
            "s3:// artifacts are fetched with boto3, which is not installed for the controller's Python: install "
            "boto3 there (pip install boto3), or publish the artifact at an http(s) URL. Nothing was changed."
        ) from None
    config = Config(
        connect_timeout=max(1, min(timeout, 60)),
        read_timeout=max(1, min(timeout, 60)),
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3", region_name=region or None, endpoint_url=endpoint_url or None, config=config
    )


def _describe_error(exc):
    """A short, secret-free reason for a boto3/botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        err = response["Error"]
        code = err.get("Code") or "error"
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = "%s%s" % (code, " (HTTP %s)" % status if status else "")
        if err.get("Message"):
            text += ": %s" % err["Message"]
        return redact_text(text)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            "no usable AWS credentials on the controller (set them in the controller's environment or AWS "
            "configuration: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"
        )
    return redact_text("%s: %s" % (name, exc))


class _S3Transfer(Transfer):
    """The worker side of one S3 fetch: a stream that is closed, not shut down, to interrupt a read."""

    def __init__(self, client, bucket, key, fileobj, budget, deadline, clock):
        super().__init__(fileobj, budget, deadline, clock)
        self.client, self.bucket, self.key = client, bucket, key

    def _close(self, stream):
        with contextlib.suppress(Exception):
            stream.close()

    _interrupt = _close

    def _run(self):
        answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        body = answer["Body"]
        if not self._hold(body):
            return
        length = answer.get("ContentLength")
        if isinstance(length, int):
            self.budget.check_announced(length)
        while True:
            if self.clock() >= self.deadline:
                raise TimeoutError("deadline reached")
            chunk = body.read(CHUNK)
            if not chunk:
                break
            if not self._store(chunk):
                return
        if isinstance(length, int) and self.written != length:
            raise DownloadError(
                "fetching s3://%s/%s failed: S3 announced %s but the stream ended after %s. Try again."
                % (self.bucket, self.key, format_bytes(length), format_bytes(self.written))
            )


def fetch_s3(
    src, fileobj, client=None, region=None, endpoint_url=None, timeout=None, max_size=None, clock=None, statvfs=None
):
    """Write the object ``src`` (``s3://bucket/key``) into ``fileobj`` within ``timeout`` seconds (default 300)
    and ``max_size`` bytes (None: no limit but the free space of ``fileobj``'s filesystem).

    ``client`` is a boto3 S3 client (tests); by default one is made from the controller's AWS configuration
    with ``region`` and ``endpoint_url``. Raises ArtifactSourceError / DownloadError; the caller removes the file.
    Returns the number of bytes written.
    """
    bucket, key = parse_s3_url(src)
    clock = clock or time.monotonic
    seconds = parse_timeout(timeout, "download_timeout")
    deadline = clock() + seconds
    if client is None:
        client = make_client(region, endpoint_url, timeout=seconds)
    budget = Budget(src, fileobj, max_size, ("bytes", 0), statvfs or os.fstatvfs)
    transfer = _S3Transfer(client, bucket, key, fileobj, budget, deadline, clock)
    finished = transfer.wait("zerodowntime-rollout-s3")
    error = transfer.error
    if not finished or isinstance(error, TimeoutError) or (error is not None and clock() >= deadline):
        raise ArtifactSourceError(
            "fetching %s did not finish within %g s (download_timeout): %s had arrived. The partial file was "
            "removed. Check the S3 endpoint, or raise rolling_update_artifact_timeout for a slow link."
            % (src, seconds, format_bytes(transfer.written)),
            timeout=seconds,
            written=transfer.written,
        )
    if error is not None:
        if not isinstance(error, Exception):
            raise error
        raise ArtifactSourceError(
            "fetching %s on the controller failed: %s. Nothing was copied or unpacked." % (src, _describe_error(error))
        ) from None
    return transfer.written
