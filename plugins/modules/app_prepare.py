#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: app_prepare
short_description: Read an app host and unpack the release it will be rolled to, in one call, while it still serves
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Reads what M(zerodowntime.rollout.app_info) reads (the release C(current) points to, the previous one, the
    releases a rollback switched away from, and one readiness probe when the host already runs O(version)), then
    unpacks O(version) from O(src) as M(zerodowntime.rollout.release) does with
    O(zerodowntime.rollout.release#module:state=present). C(current) is never changed and the app is never touched.
  - Nothing is unpacked when the host already runs O(version), or when O(version) was rolled back on this host and
    O(retry_rolled_back) is false (the caller is expected to refuse that host; RV(rolled_back) says so).
  - The archive is verified against O(checksum) and checked member by member before anything is written, and the
    free-space rule O(min_free_space) is applied. A failure names the problem and leaves no half release.
  - The C(zerodowntime.rollout.rolling_update) playbook runs it once per host, in parallel, after the rollout lock
    is taken and before the first host is drained.
options:
  path:
    description: Absolute path of the release layout (the directory holding C(releases/) and C(current)).
    type: path
    required: true
  version:
    description: The release the rollout wants the host to run (letters, digits, C(.), C(_), C(-), C(+)).
    type: str
    required: true
  src:
    description:
      - The archive of O(version), an absolute path on this host or an C(http(s)) URL, as the
        M(zerodowntime.rollout.release) option of the same name. Only read when O(version) must be unpacked.
    type: str
    required: true
  checksum:
    description: Expected C(sha256:<hex>) of the archive. Required for a URL O(src) unless O(allow_unverified=true).
    type: str
  allow_unverified:
    description: Allow a URL O(src) without O(checksum).
    type: bool
    default: false
  retry_rolled_back:
    description:
      - Unpack O(version) even when a rollback switched away from it on this host and it has not run since.
    type: bool
    default: false
  keep:
    description: Releases to keep after the unpack, as the M(zerodowntime.rollout.release) option.
    type: int
    default: 5
  min_free_space:
    description: Free space to leave after the unpack, as the M(zerodowntime.rollout.release) option.
    type: str
    default: "0"
  shared_paths:
    description: Paths linked from each release into C(shared/), as the M(zerodowntime.rollout.release) option.
    type: list
    elements: str
    default: []
  owner:
    description: Owner of the release contents, as the M(zerodowntime.rollout.release) option.
    type: str
  group:
    description: Group of the release contents, as the M(zerodowntime.rollout.release) option.
    type: str
  service_manager:
    description:
      - How the app is stopped and started, as the M(zerodowntime.rollout.app_replace) option. When set, the module
        checks first, before anything is written, that this will work. For V(systemd), that O(service_name) is a unit
        systemd knows and that the module runs as root; for V(command), that the programs of O(stop_command) and
        O(start_command) exist. Not checked when omitted.
    type: str
    choices: [systemd, command]
  service_name:
    description: The systemd unit of the app, with O(service_manager=systemd).
    type: str
  start_command:
    description: The command that starts the app, with O(service_manager=command).
    type: str
  stop_command:
    description: The command that stops the app, with O(service_manager=command).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.readiness
attributes:
  check_mode:
    support: full
    details:
      - Reads, verifies a local archive and reports what it would unpack; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: zerodowntime.rollout.app_info
  - module: zerodowntime.rollout.release
  - module: zerodowntime.rollout.app_replace
"""

EXAMPLES = r"""
- name: Unpack 2.4.1 while the host still serves (nothing when it runs 2.4.1 already)
  zerodowntime.rollout.app_prepare:
    path: /srv/shop
    version: "2.4.1"
    src: https://artifacts.example.com/shop/shop-2.4.1.tar.gz
    checksum: "sha256:{{ shop_sha256 }}"
    owner: shop
    group: shop
    health_url: http://127.0.0.1:8080/ready
  register: shop

- name: Refuse a host where 2.4.1 was rolled back
  ansible.builtin.assert:
    that: "'2.4.1' not in shop.rolled_back"
"""

RETURN = r"""
current:
  description: The release C(current) points to, or null.
  returned: always
  type: str
  sample: "2.4.0"
previous:
  description: The release that was active before C(current), or null.
  returned: always
  type: str
on_target:
  description: True when C(current) is O(version).
  returned: always
  type: bool
prepared:
  description: True when O(version) is unpacked and complete now (in check mode, when it would be).
  returned: always
  type: bool
unpack:
  description: What was done about O(version), or why nothing was.
  returned: always
  type: str
  sample: unpack 2.4.1
pruned:
  description: Old releases removed to keep O(keep).
  returned: always
  type: list
  elements: str
ready:
  description: The result of one readiness probe when RV(on_target); null otherwise.
  returned: always
  type: bool
probe_error:
  description: Why that probe failed, or null.
  returned: always
  type: str
rolled_back:
  description: Releases a rollback switched away from that have not run since.
  returned: always
  type: list
  elements: str
rolled_back_at:
  description: When O(version) was rolled back on this host, or null.
  returned: always
  type: str
msg:
  description: A one-line summary.
  returned: always
  type: str
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._download import make_fetch  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import (  # noqa: E402
    READINESS_SPEC,
    readiness_probe,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._prepare import prepare_app  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_params, redact_text  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import Service, deadline_runner  # noqa: E402

RELEASE_OPTIONS = ("checksum", "allow_unverified", "keep", "min_free_space", "shared_paths", "owner", "group")


def argument_spec():
    spec = {
        "path": {"type": "path", "required": True},
        "version": {"type": "str", "required": True},
        "src": {"type": "str", "required": True},
        "checksum": {"type": "str"},
        "allow_unverified": {"type": "bool", "default": False},
        "retry_rolled_back": {"type": "bool", "default": False},
        "keep": {"type": "int", "default": 5},
        "min_free_space": {"type": "str", "default": "0"},
        "shared_paths": {"type": "list", "elements": "str", "default": []},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "service_manager": {"type": "str", "choices": ["systemd", "command"]},
        "service_name": {"type": "str"},
        "start_command": {"type": "str"},
        "stop_command": {"type": "str"},
    }
    spec.update(READINESS_SPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    redact_params(module.params, ["src", "health_url"])  # the invocation in the result shows params as they end
    release_args = {name: params[name] for name in RELEASE_OPTIONS}
    release_args["src"] = params["src"]
    try:
        # The download keeps min_free_space free too, within the release module's default deadline.
        release_args["fetch"] = make_fetch(min_free_space=params["min_free_space"])
        service_check = None
        if params["service_manager"]:
            service = Service(
                params["service_manager"],
                name=params["service_name"],
                start_command=params["start_command"],
                stop_command=params["stop_command"],
                run=deadline_runner(module.run_command, module.get_bin_path("timeout")),
            )

            def service_check():
                service.check(os.geteuid(), module.get_bin_path)

        result = prepare_app(
            params["path"],
            params["version"],
            release_args,
            quick_probe=readiness_probe(params, 1, 0),
            retry_rolled_back=params["retry_rolled_back"],
            check_mode=module.check_mode,
            service_check=service_check,
        )
    except RolloutError as exc:
        module.fail_json(msg=redact_text(exc.msg), **exc.details)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
