# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The controller's side of zerodowntime.rollout.app_prepare with ``artifact_from=controller`` (or ``s3://``).

1. the module runs with ``defer_src``: it reads the host and answers whether the archive is needed, and how much
   the filesystem that would receive the copy can take, without reading ``src`` or writing anything. A host that
   runs the release already, or where it was rolled back, stops here: nothing is fetched or copied;
2. the controller gets the archive (its own file; an S3 object or URL fetched once per run into a private cache
   when the checksum is known, else once for this host) and verifies it, or computes its checksum;
3. the archive is refused when it is above ``max_size`` or does not fit on the host, then copied into the
   task's remote temporary directory within ``download_timeout``;
4. the module runs again on the copy, which it verifies against the checksum before unpacking.

The remote temporary directory, and a per-host temporary file on the controller, are removed at the end, on
failure too. In check mode nothing is fetched or copied. The action plugin imports this module only for such a
task, so that a task whose host reads the archive imports none of it.
"""

import os

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import (
    check_copy_fits,
    file_name,
    require_checksum,
    resolve,
    shown,
    stat_controller_file,
    verify_controller_file,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._download import (
    download,
    parse_max_size,
    parse_timeout,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import format_bytes
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._artifact_cache import ArtifactCache
from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._deadline import run_with_deadline

MODULE = "zerodowntime.rollout.app_prepare"
CONTROLLER_ONLY = ("artifact_from", "s3_endpoint_url", "region")
INTERNAL_RESULT = ("src_needed", "copy_room")


def run_from_controller(action, args, task_vars):
    """The task's result, for ``action`` (the app_prepare action plugin) when the controller provides the archive."""
    src = args.get("src")
    try:
        _side, kind = resolve(src, args.get("artifact_from") or "auto")
    except RolloutError as exc:
        return dict(exc.details, failed=True, msg=exc.msg)
    flow = _ControllerArtifact(action)
    local_tmp = []
    try:
        return flow.run(args, src, kind, task_vars, local_tmp)
    except RolloutError as exc:
        result = dict(exc.details, failed=True, msg=exc.msg)
        if flow.source is not None:
            result["source"] = flow.source
        return result
    finally:
        action._remove_tmp_path(action._connection._shell.tmpdir)
        for path in local_tmp:
            ArtifactCache.discard(path)


class _ControllerArtifact:
    """The four steps, on the action plugin's connection and module machinery."""

    def __init__(self, action):
        self.action = action
        self.source = None

    def _module_args(self, args, **extra):
        out = {k: v for k, v in args.items() if k not in CONTROLLER_ONLY}
        out.update(extra, artifact_from="host")
        return out

    def run(self, args, src, kind, task_vars, local_tmp):
        check_mode = bool(self.action._play_context.check_mode)
        checksum = require_checksum(src, kind, args.get("checksum"), args.get("allow_unverified"))
        timeout = parse_timeout(args.get("download_timeout"))
        max_size = parse_max_size(args.get("max_size"))
        source = {"from": "controller", "kind": kind, "src": shown(src), "checksum": checksum, "size": None}
        source.update(fetched=False, copied=False)
        self.source = source
        size = None
        if kind == "path":
            size = source["size"] = stat_controller_file(src)
            check_copy_fits(src, size, max_size)

        # 1. Read the host; nothing is written there. Without pipelining the module needs the remote temporary
        # directory anyway: make it first, so that the host reports the free space where the copy would land.
        if not self.action._is_pipelining_enabled("new") and self.action._connection._shell.tmpdir is None:
            self.action._make_tmp_path()
        probe_args = self._module_args(args, defer_src=True)
        if self.action._connection._shell.tmpdir:
            probe_args["copy_dir"] = self.action._connection._shell.tmpdir
        probe = self.action._execute_module(module_name=MODULE, module_args=probe_args, task_vars=task_vars)
        if probe.get("failed") or not probe.get("src_needed"):
            return self._finish(probe, src, source)
        room = probe.get("copy_room")
        if size is not None:
            check_copy_fits(src, size, max_size, room, args.get("min_free_space"))

        if check_mode:
            if kind == "path":
                source["checksum"] = verify_controller_file(src, checksum, src)
            source["would_copy"] = True
            what = "fetch %s on the controller, copy it" % shown(src) if kind != "path" else "copy %s" % src
            probe.update(
                changed=True,
                prepared=True,
                unpack="would %s to the host and unpack %s" % (what, args.get("version")),
            )
            probe["msg"] = "%s; check mode: nothing was fetched or copied." % probe["msg"].rstrip(".")
            return self._finish(probe, src, source)

        # 2. The archive on the controller, verified.
        if kind == "path":
            local = src
            source["checksum"] = verify_controller_file(src, checksum, src)
        else:
            cache = ArtifactCache(timeout=timeout)
            local, source["checksum"], source["fetched"], temporary = cache.obtain(
                src, checksum, self._fetcher(args, kind, timeout, max_size)
            )
            if temporary:
                local_tmp.append(local)
            size = source["size"] = os.path.getsize(local)
            check_copy_fits(src, size, max_size, room, args.get("min_free_space"))

        # 3. The copy, into the task's remote temporary directory.
        if self.action._connection._shell.tmpdir is None:
            self.action._make_tmp_path()
        tmpdir = self.action._connection._shell.tmpdir
        remote = self.action._connection._shell.join_path(tmpdir, file_name(src, kind))
        run_with_deadline(lambda: self.action._transfer_file(local, remote), timeout, shown(src))
        self.action._fixup_perms2((tmpdir, remote))
        source["copied"] = True

        # 4. Unpack from the copy, verified again on the host.
        final = self.action._execute_module(
            module_name=MODULE,
            module_args=self._module_args(args, src=remote, checksum=source["checksum"]),
            task_vars=task_vars,
        )
        if not final.get("failed"):
            final["msg"] = "%s (copied %s, %s, from the controller)" % (
                final.get("msg", "").rstrip("."),
                shown(src),
                format_bytes(size),
            )
        return self._finish(final, src, source)

    def _fetcher(self, args, kind, timeout, max_size):
        if kind == "s3":
            from ansible_collections.zerodowntime.rollout.plugins.module_utils._s3 import fetch_s3

            region, endpoint = args.get("region") or None, args.get("s3_endpoint_url") or None

            def fetch(src, handle):
                fetch_s3(src, handle, region=region, endpoint_url=endpoint, timeout=timeout, max_size=max_size)

            return fetch

        def fetch(src, handle):
            download(src, handle, timeout=timeout, max_size=max_size)

        return fetch

    @staticmethod
    def _finish(out, src, source):
        out = dict(out)
        for key in INTERNAL_RESULT:
            out.pop(key, None)
        out["source"] = source
        invocation = out.get("invocation")
        if isinstance(invocation, dict) and isinstance(invocation.get("module_args"), dict):
            margs = dict(invocation["module_args"])
            for key in ("defer_src", "copy_dir"):
                margs.pop(key, None)
            margs["src"] = shown(src)
            out["invocation"] = dict(invocation, module_args=margs)
        return out
