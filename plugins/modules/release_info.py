#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: release_info
short_description: Read what the release layout of a host holds, including releases that were rolled back
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Reads the layout that M(zerodowntime.rollout.release) manages under O(path) on the target host, that is the
    C(current) release, the previous one, every release directory with its recorded checksum, and the activation
    history.
  - Names the releases that a rollback switched away from and that have not been active since (RV(rolled_back)).
    The C(zerodowntime.rollout.rolling_update) role uses it to refuse a release that it already rolled back on a
    host, unless told to retry.
  - Changes nothing and takes no lock. The state file is replaced atomically, so a run of the release module at the
    same moment is seen either before or after its change.
options:
  path:
    description:
      - Absolute path of the layout root (the directory holding C(releases/), C(shared/) and C(current)).
      - A path that does not exist is reported with RV(exists=false), not as an error.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.app_host
  - zerodowntime.rollout.app_host.read_only
seealso:
  - module: zerodowntime.rollout.release
notes:
  - A layout made by other tooling (no state file yet) is reported as it is; its releases show C(adopted=true) and
    no checksum, and nothing is recorded as rolled back.
"""

EXAMPLES = r"""
- name: Read the releases of the shop
  zerodowntime.rollout.release_info:
    path: /srv/shop
  register: __releases

- name: Refuse a release that was rolled back on this host
  ansible.builtin.assert:
    that: version not in __releases.rolled_back
    fail_msg: "{{ version }} was rolled back on {{ inventory_hostname }}; find out why before trying it again."
  vars:
    version: 1.4.2

- name: Show when each release was installed
  ansible.builtin.debug:
    msg: "{{ __releases.releases | items2dict(key_name='name', value_name='installed_at') }}"
"""

RETURN = r"""
exists:
  description: Whether O(path) is a directory. When false, every other value is empty.
  returned: success
  type: bool
  sample: true
current:
  description: The release C(current) points to; null when there is none.
  returned: success
  type: str
  sample: 1.4.1
previous:
  description: The release that was active before the current one, when known; null otherwise.
  returned: success
  type: str
  sample: 1.4.2
releases:
  description: One entry per directory in C(releases/), least recently installed or activated first.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The release name (its directory name).
      type: str
      sample: 1.4.2
    complete:
      description:
        - Whether the release is complete. An unrecorded directory is left over from an interrupted run and is
          unpacked again before use.
      type: bool
      sample: true
    checksum:
      description: The checksum the archive was verified against when it was unpacked; null when none was given.
      type: str
      sample: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    installed_at:
      description: When it was unpacked (UTC, ISO 8601); null for an adopted release.
      type: str
      sample: "2026-11-28T03:12:40Z"
    adopted:
      description: Whether it was found on disk rather than unpacked by the release module.
      type: bool
      sample: false
    rolled_back_at:
      description: When a rollback last switched away from it (UTC, ISO 8601); null when it has run since, or never.
      type: str
      sample: "2026-11-28T03:14:02Z"
  sample:
    - {name: 1.4.1, complete: true, checksum: null, installed_at: null, adopted: true, rolled_back_at: null}
    - {name: 1.4.2, complete: true, checksum: "sha256:9f86...", installed_at: "2026-11-28T03:12:40Z",
       adopted: false, rolled_back_at: "2026-11-28T03:14:02Z"}
rolled_back:
  description: Names of the releases a rollback switched away from and that have not been active since.
  returned: success
  type: list
  elements: str
  sample: [1.4.2]
history:
  description: Activations as recorded in the state file, oldest first (at most the last 100).
  returned: success
  type: list
  elements: dict
  contains:
    release:
      description: The release that became current.
      type: str
    seq:
      description: A counter that orders installs and activations.
      type: int
    at:
      description: When (UTC, ISO 8601).
      type: str
  sample:
    - {release: 1.4.1, seq: 3, at: "2026-11-20T09:00:00Z"}
    - {release: 1.4.2, seq: 5, at: "2026-11-28T03:12:41Z"}
    - {release: 1.4.1, seq: 6, at: "2026-11-28T03:14:02Z"}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import describe_releases  # noqa: E402


def argument_spec():
    return {"path": {"type": "path", "required": True}}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda params: dict(changed=False, **describe_releases(params["path"])))


if __name__ == "__main__":
    main()
