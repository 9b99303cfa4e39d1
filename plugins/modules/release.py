#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


DOCUMENTATION = r"""
---
module: release
short_description: Unpack, activate, roll back and prune releases in a Capistrano-style layout
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Manages C(PATH/releases/<version>/), C(PATH/shared/) and the relative symlink C(PATH/current) pointing at
    C(releases/<version>), on the target host.
  - A release is unpacked into a staging directory under C(PATH/.rollout-tmp/) (same filesystem) and renamed into
    C(releases/) only when complete, so an interrupted run never leaves a half release. Staging leftovers of an
    interrupted run are removed by the next run.
  - C(current) is switched by creating a new symlink under a temporary name and renaming it over the old one. A
    reader resolving C(current/...) at any moment sees the old or the new release, never nothing.
  - The state file C(PATH/.rollout-state.json) (written atomically) records the current and previous release, the
    activation history and the checksum of each release. The C(current) symlink is the truth about the current
    release; directory modification times are never used.
  - A layout made by other tooling (a C(current) symlink and release directories, but no state file) is adopted
    as it is. Its releases count as complete, and the previous release is unknown until this module activates
    one, so O(state=rollback) then needs O(version).
  - Once a state file exists, a directory in C(releases/) that it does not record is incomplete (an interrupted
    run) and is unpacked again from O(src) before use.
  - Archive contents land as they are in the release directory. A single top-level directory in the archive is
    not stripped.
  - Every archive member is checked before anything is written. Absolute names, C(..) components, device files,
    FIFOs, symbolic links resolving outside the release (link chains are followed), hard links to anything but a
    regular file stored earlier in the archive, members beneath a symbolic link of the archive and duplicate names
    are refused.
  - Archive ownership is ignored (files belong to the user running the module, or to O(owner)/O(group)).
    Modes keep the owner's bits and the read and execute bits of group and others. Group and other write bits,
    setuid, setgid and sticky bits are dropped, so that no release file or directory is writable by another user
    (a C(01777) directory in the archive becomes C(0755)). Give the app a writable place through O(shared_paths)
    instead.
  - A damaged archive (bad compressed data, bad CRC, truncated stream, damaged header) fails with a message that
    names the archive and, where known, the member. Nothing of it is left behind.
  - An O(src) URL is downloaded into C(PATH/.rollout-tmp/) within O(download_timeout), and within the free-space
    rule O(min_free_space) and O(max_size). A C(Content-Length) that breaks them is refused before the body is
    read, and a body that grows past them is cut. A partial download is removed.
  - Runs on one C(PATH) are serialised with a lock file, C(PATH/.rollout.lock).
options:
  path:
    description:
      - Absolute path of the layout root (the directory holding C(releases/), C(shared/) and C(current)).
      - Created when missing for O(state=present) and O(state=active).
    type: path
    required: true
  version:
    description:
      - Release name, used as the directory name under C(releases/).
      - Letters, digits, C(.), C(_), C(-) and C(+) only; must not start with C(.) or contain C(..).
      - Required unless O(state=rollback).
    type: str
  src:
    description:
      - The archive to unpack, C(.tar.gz), C(.tgz), C(.tar) or C(.zip) (the format is guessed from the content when
        the name has none of these suffixes).
      - Either an absolute path on the target host, or an C(http://) or C(https://) URL, downloaded on the target
        host with Ansible's own URL code (no extra package is needed).
      - Only read when the release is not already complete. Releases are immutable; to change the contents of
        a version, remove it first or use a new version name.
      - Required when O(state=present) or O(state=active) and the release is not complete yet.
    type: str
  checksum:
    description:
      - Expected checksum of the archive, as C(sha256:<hex digest>).
      - Required for a URL O(src) unless O(allow_unverified=true). Verified for a local O(src) when given.
      - On a mismatch the task fails before the release exists, and C(current) is untouched.
      - For a release that is already complete, a different checksum than the one recorded when it was unpacked
        is an error (releases are immutable); an equal one means nothing is downloaded.
    type: str
  allow_unverified:
    description:
      - Allow a URL O(src) without O(checksum).
    type: bool
    default: false
  state:
    description:
      - V(present) makes sure the release is unpacked, without activating it.
      - V(active) makes sure the release is unpacked and C(current) points to it.
      - V(rollback) points C(current) back to the release that was active before the current one, or to
        O(version) when given. Rolling back twice returns to where you started.
      - The state file then records the release that was left as rolled back, until it is active again;
        M(zerodowntime.rollout.release_info) reports it, and the rolling_update role refuses to deploy it again
        unless told to retry.
      - V(absent) removes an inactive release. Removing the current release is refused.
    type: str
    choices: [present, active, rollback, absent]
    default: present
  keep:
    description:
      - With O(state=present) or O(state=active), keep at most this many releases and delete the oldest others.
      - The current and the previous release (and the release just unpacked) are never deleted.
      - Oldest means least recently installed or activated according to the state file; releases the state file
        does not know come first, ordered by name (natural order, so C(v9) before C(v10)).
      - V(0) disables pruning.
    type: int
    default: 5
  min_free_space:
    description:
      - Before a release is unpacked, the space it takes is estimated from the archive's member headers (the
        extraction never writes more), and the release is refused, with nothing written, when it would not fit on
        the filesystem of O(path) while leaving this much free.
      - A size in bytes with an optional binary suffix (C(512M), C(2G); C(K), C(M), C(G), C(T)), or a percentage of
        the filesystem (C(5%)).
      - V(0) still refuses a release that does not fit at all.
      - The size a release takes is estimated as one block (4 KiB) per member, parent directories included,
        plus the bytes of each file rounded up to whole blocks. Before the first write, the release is also
        refused when the filesystem has fewer free inodes than members (one inode each), or fewer free blocks of
        its own size than the estimate.
      - The download of an O(src) URL keeps this much free as well. A C(Content-Length) that would break the rule
        is refused before the download starts, and the download is cut as soon as its running byte count would
        break it.
    type: str
    default: "0"
    version_added: 0.2.0
  max_members:
    description:
      - Largest number of members (files, directories and links) an archive may hold. An archive with more is
        refused before anything is unpacked (a zip archive from its end record, a tar archive as soon as one
        member too many is read).
    type: int
    default: 100000
    version_added: 0.2.0
  download_timeout:
    description:
      - Seconds the whole download of an O(src) URL may take (name resolution, connection, headers and body
        together). A download still running then is cut, whatever the server sends, and the task fails.
      - This is a deadline for the whole transfer, not a timeout per read.
    type: int
    default: 300
    version_added: 0.2.0
  max_size:
    description:
      - Largest size of the archive downloaded from an O(src) URL, in bytes with an optional binary suffix
        (C(512M), C(2G); C(K), C(M), C(G), C(T)), as O(min_free_space) takes it, without percentages.
      - A larger C(Content-Length) is refused before the download starts, and a body that grows past it is cut.
      - V(0), or no value, sets no limit beyond O(min_free_space). A local O(src) is not limited by it.
    type: str
    version_added: 0.2.0
  shared_paths:
    description:
      - Paths, relative to the release, replaced by a relative symlink to the same path under C(PATH/shared/).
      - Whatever the archive holds at such a path is removed from the release.
      - A missing C(PATH/shared/<path>) is created as an empty directory. To share a file, create it under
        C(shared/) beforehand.
      - Applied when a release is unpacked; a release that is already complete is not changed.
    type: list
    elements: str
    default: []
  owner:
    description:
      - User (name or id) that owns the contents of the unpacked release and the directories created under
        C(PATH/shared/). Applied when a release is unpacked.
      - C(PATH), C(releases/), C(shared/), C(.rollout-tmp/), the state file and the lock always belong to the user
        the module runs as (root under C(become)), so the app user cannot swap them for links. A layout made by an
        earlier version, whose entries belong to O(owner), is taken back with a warning; a symbolic link or an
        entry of any other user there is refused, and nothing is changed.
    type: str
  group:
    description:
      - Group (name or id) of the contents of the unpacked release and of the directories created under
        C(PATH/shared/). Applied when a release is unpacked.
    type: str
  mode:
    description:
      - Octal mode of the release directory itself (not of its contents, whose modes come from the archive without
        group and other write bits), for example V('0755'). Defaults to C(0755).
      - Applied when a release is unpacked.
    type: raw
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change and changes nothing. A local O(src) is read and checked (checksum, member
        names); a URL O(src) is not downloaded.
  diff_mode:
    support: full
    details:
      - Shows C(current) and the list of releases, before and after.
  platform:
    platforms: posix
seealso:
  - module: zerodowntime.rollout.http_health
notes:
  - The state file, the staging directory C(.rollout-tmp/) and the lock file C(.rollout.lock) live in O(path); do
    not remove them while a run is in progress.
  - A zip archive's symbolic links (Unix zip attributes) are recreated as symbolic links, checked like tar ones.
"""

EXAMPLES = r"""
- name: Unpack and activate release 1.4.2 from an artifact server
  zerodowntime.rollout.release:
    path: /srv/shop
    version: 1.4.2
    src: https://artifacts.example.com/shop/shop-1.4.2.tar.gz
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    state: active
    shared_paths:
      - log
      - config/database.yml
    owner: shop
    group: shop
    keep: 5
  register: __rolling_update_release

- name: Download a release within two minutes and 512 MiB, keeping 2 GiB free, of at most 20000 files
  zerodowntime.rollout.release:
    path: /srv/shop
    version: 1.4.2
    src: https://artifacts.example.com/shop/shop-1.4.2.tar.gz
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    download_timeout: 120
    max_size: 512M
    min_free_space: 2G
    max_members: 20000
    state: present

- name: Unpack a release copied to the host beforehand, without activating it
  zerodowntime.rollout.release:
    path: /srv/shop
    version: 1.4.3
    src: /tmp/shop-1.4.3.zip
    state: present

- name: Go back to the release that was active before
  zerodowntime.rollout.release:
    path: /srv/shop
    state: rollback

- name: Roll back to a named release (needed on a freshly adopted layout)
  zerodowntime.rollout.release:
    path: /srv/shop
    version: 1.4.1
    state: rollback

- name: Remove an old, inactive release
  zerodowntime.rollout.release:
    path: /srv/shop
    version: 1.3.0
    state: absent
"""

RETURN = r"""
msg:
  description: What was done (or, in check mode, would be done).
  returned: always
  type: str
  sample: "unpacked 1.4.2 (sha256:9f86...); activated 1.4.2 (previous: 1.4.1); pruned 1.3.9"
current:
  description: The release C(current) points to after the task (in check mode, would point to); null when none.
  returned: success
  type: str
  sample: 1.4.2
previous:
  description: The release that was active before the current one, when known; null otherwise.
  returned: success
  type: str
  sample: 1.4.1
releases:
  description: The release directories after the task, in natural order.
  returned: success
  type: list
  elements: str
  sample: [1.3.9, 1.4.1, 1.4.2]
release_path:
  description:
    - Directory of the release the task was about (for O(state=rollback), the new current release).
  returned: success
  type: str
  sample: /srv/shop/releases/1.4.2
pruned:
  description: Releases deleted by O(keep) (in check mode, that would be deleted).
  returned: success
  type: list
  elements: str
  sample: [1.3.9]
diff:
  description: C(current) and the release list, before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._activate import STATES  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.limits import (  # noqa: E402
    DEFAULT_MAX_MEMBERS,
    archive_limits,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._download import (  # noqa: E402
    DOWNLOAD_TIMEOUT,
    make_fetch,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release  # noqa: E402


def argument_spec():
    return {
        "path": {"type": "path", "required": True},
        "version": {"type": "str"},
        "src": {"type": "str"},
        "checksum": {"type": "str"},
        "allow_unverified": {"type": "bool", "default": False},
        "state": {"type": "str", "choices": list(STATES), "default": "present"},
        "keep": {"type": "int", "default": 5},
        "min_free_space": {"type": "str", "default": "0"},
        "max_members": {"type": "int", "default": DEFAULT_MAX_MEMBERS},
        "download_timeout": {"type": "int", "default": DOWNLOAD_TIMEOUT},
        "max_size": {"type": "str"},
        "shared_paths": {"type": "list", "elements": "str", "default": []},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "raw"},
    }


def run(params, module):
    fetch = make_fetch(
        timeout=params["download_timeout"], max_size=params["max_size"], min_free_space=params["min_free_space"]
    )
    with archive_limits(max_members=params["max_members"]):
        result = manage_release(
            path=params["path"],
            state=params["state"],
            version=params["version"],
            src=params["src"],
            checksum=params["checksum"],
            allow_unverified=params["allow_unverified"],
            keep=params["keep"],
            min_free_space=params["min_free_space"],
            shared_paths=params["shared_paths"],
            owner=params["owner"],
            group=params["group"],
            mode=params["mode"],
            fetch=fetch,
            check_mode=module.check_mode,
            diff=module._diff,
        )
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("state", "present", ["version"]),
            ("state", "active", ["version"]),
            ("state", "absent", ["version"]),
        ],
    )
    run_module(module, lambda params: run(params, module), secret_params=["src"])


if __name__ == "__main__":
    main()
