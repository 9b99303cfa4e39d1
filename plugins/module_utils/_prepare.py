# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Prepare an app host for its rollout in one call, while it still serves.

Checks, when asked, that the app can be stopped and started here (the systemd unit exists and may be managed,
or the programs of the stop and start commands exist). Reads what :func:`read_app` reads (the releases, the
rolled-back releases, one readiness probe when the host already runs the target), then unpacks the target
release unless there is no point:

- the host already runs it (nothing to unpack; the caller decides whether it is ready);
- it was rolled back on this host and is not retried on purpose (the caller refuses the host, so nothing is
  written here either).

The unpack is :func:`manage_release` with ``state=present``: the archive is verified against its checksum and
checked member by member before anything is written, the free-space rule is applied, and nothing changes in
``current``. A failure raises the release's own error, whose message says that nothing was unpacked.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._app_info import read_app
from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import copy_room


def prepare_app(
    path,
    version,
    release_args,
    quick_probe=None,
    retry_rolled_back=False,
    check_mode=False,
    service_check=None,
    defer_src=False,
    copy_dir=None,
):
    """Read the host, then unpack ``version`` when it will be rolled. Returns the module result.

    ``service_check()``, when given, runs first (for example :meth:`Service.check`: the unit exists and may be
    managed, or the commands' programs exist) and raises to refuse the host before anything is written.

    ``release_args`` are :func:`manage_release`'s keyword arguments for the unpack (``src``, ``checksum``,
    ``allow_unverified``, ``keep``, ``min_free_space``, ``shared_paths``, ``owner``, ``group``, ``fetch``).
    The result is :func:`read_app`'s, plus ``prepared`` (the release is unpacked and complete, or would be in
    check mode), ``unpack`` (why it was or was not unpacked) and ``pruned``.

    With ``defer_src`` (the action plugin's first call when the controller provides the archive), nothing is
    unpacked or written: when the release must be unpacked, the result says so with ``src_needed`` and gives
    ``copy_room``, the bytes the filesystem of ``copy_dir`` (where the copy will land; default ``path``) can take
    while keeping ``min_free_space`` free, so that the controller can refuse an archive that does not fit before
    it copies anything. ``src_needed`` is false otherwise.
    """
    if service_check is not None:
        service_check()
    result = read_app(path, version, quick_probe=quick_probe)
    if result["on_target"]:
        why = "runs %s already: nothing to unpack" % version
    elif version in result["rolled_back"] and not retry_rolled_back:
        why = "%s was rolled back here: not unpacked (retry_rolled_back is false)" % version
    else:
        why = None
    if why is not None:
        result.update(prepared=result["unpacked"], unpack=why, pruned=[])
        if defer_src:
            result["src_needed"] = False
        result["msg"] = "%s; %s." % (result["msg"].rstrip("."), why)
        return result
    if defer_src:
        why = "%s must be unpacked: the archive is needed" % version
        room = copy_room(copy_dir or path, release_args.get("min_free_space"))
        result.update(changed=False, prepared=False, unpack=why, pruned=[], src_needed=True, copy_room=room)
        result["msg"] = "%s; %s." % (result["msg"].rstrip("."), why)
        return result
    # Imported here, not at the top: a call that unpacks nothing (the host runs the target already, or the first
    # call for an archive the controller provides) does not load the unpack and archive code.
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release

    unpacked = manage_release(path, state="present", version=version, check_mode=check_mode, **release_args)
    result.update(
        changed=unpacked["changed"],
        prepared=True,
        unpacked=not check_mode or result["unpacked"],
        unpack=unpacked["msg"],
        pruned=unpacked["pruned"],
    )
    if unpacked.get("warnings"):
        result["warnings"] = list(unpacked["warnings"])
    result["msg"] = "%s runs %s; %s: %s." % (path, result["current"] or "no release", version, unpacked["msg"])
    return result
