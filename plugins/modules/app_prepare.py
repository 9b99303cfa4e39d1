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
  version:
    description: The release the rollout wants the host to run (letters, digits, C(.), C(_), C(-), C(+)).
    type: str
    required: true
  src:
    description:
      - The archive of O(version). Only read when O(version) must be unpacked.
      - With O(artifact_from=host), an absolute path on this host or an C(http(s)) URL this host downloads, as the
        M(zerodowntime.rollout.release) option of the same name.
      - With O(artifact_from=controller), an absolute path on the controller, an C(http(s)) URL the controller
        downloads, or C(s3://bucket/key), fetched on the controller with boto3.
    type: str
    required: true
  artifact_from:
    description:
      - Who reads O(src). V(host) - this host. V(controller) - the controller reads (or fetches) O(src), verifies
        it against O(checksum) (or computes its checksum when there is none), and copies it to this host, which
        verifies the copy again before unpacking. V(auto) - V(controller) for C(s3://bucket/key), V(host) for
        anything else.
      - A copy happens only when the host will unpack O(version) (not when it runs O(version) already, nor when
        O(version) was rolled back there and O(retry_rolled_back=false)). The module is then run twice, first to
        read the host without writing anything, then with the copy.
      - The copy follows the rules of a URL download. It is refused before it starts when it is larger than
        O(max_size) or than what the filesystem that receives it can take while keeping O(min_free_space) free,
        and it must finish within O(download_timeout). The copy lands in Ansible's remote temporary directory
        and is removed afterwards, on failure too.
      - An S3 object or a URL fetched on the controller is fetched once per run when O(checksum) is set (kept in
        a private directory under Ansible's local temporary directory, removed when the run ends), else once per
        host.
      - C(s3://) with O(artifact_from=host) is refused.
    type: str
    choices: [auto, host, controller]
    default: auto
  s3_endpoint_url:
    description:
      - S3 endpoint URL for an C(s3://) O(src) (empty - AWS itself). Credentials come only from the controller's
        environment and AWS configuration, never from a task option.
    type: str
    default: ""
  region:
    description: AWS region for an C(s3://) O(src) (empty - the controller's AWS configuration).
    type: str
    default: ""
  max_size:
    description:
      - The largest archive that is downloaded, fetched or copied, in the size syntax of O(min_free_space)
        (C(512M), C(2G)), without percentages. V(0) or empty - no limit beyond the free space.
    type: str
    default: ""
  download_timeout:
    description:
      - Seconds a URL download on the host, a fetch on the controller, or the copy to the host may take in all.
    type: int
    default: 300
  defer_src:
    description:
      - Internal, set by the action plugin for O(artifact_from=controller). Read the host and answer whether the
        archive is needed (RV(src_needed)) without reading O(src) or writing anything.
    type: bool
    default: false
  copy_dir:
    description:
      - Internal, set by the action plugin with O(defer_src). The directory the copy will land in, whose free
        space RV(copy_room) reports.
    type: path
  checksum:
    description:
      - Expected C(sha256:<hex>) of the archive. Required for a URL or C(s3://) O(src) unless
        O(allow_unverified=true).
    type: str
  allow_unverified:
    description: Allow a URL or C(s3://) O(src) without O(checksum).
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
        systemd knows and that the module runs as root; for V(command), that O(stop_command) and O(start_command)
        pass C(sh -n) and that the first program of each resolves with C(command -v) on the host. Not checked when
        omitted.
    type: str
    choices: [systemd, command]
  service_name:
    description: The systemd unit of the app, with O(service_manager=systemd).
    type: str
  start_command:
    description:
      - The command line that starts the app, with O(service_manager=command), as the
        M(zerodowntime.rollout.app_replace) option. It is run by C(/bin/sh -c), so shell syntax such as
        C(PORT=8080 ./bin/ctl start) or C(cd /srv/shop/current && ./bin/start) works.
      - Checked before anything is written, and never run here. The line must pass C(sh -n), and its first word that
        is not a C(VAR=value) assignment must resolve with the shell's C(command -v) on the host (a program on PATH, a
        shell builtin such as C(cd), or an executable file when it contains a C(/)). A first word that needs an
        expansion (C($APP_HOME/bin/ctl)) is left to run time.
    type: str
  stop_command:
    description:
      - The command line that stops the app, with O(service_manager=command), as the
        M(zerodowntime.rollout.app_replace) option; checked as O(start_command) is.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.app_host
  - zerodowntime.rollout.app_host.layout
  - zerodowntime.rollout.readiness
attributes:
  check_mode:
    support: full
    details:
      - Reads, verifies a local archive and reports what it would unpack; writes nothing.
      - With O(artifact_from=controller), nothing is fetched or copied; a path on the controller is verified, and
        RV(source) says what would be copied.
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

- name: Copy 2.4.1 from S3 through the controller, once per run, to the hosts that will unpack it
  zerodowntime.rollout.app_prepare:
    path: /srv/shop
    version: "2.4.1"
    src: s3://shop-artifacts/shop/shop-2.4.1.tar.gz
    checksum: "sha256:{{ shop_sha256 }}"
    region: eu-west-1
    max_size: 512M
    health_url: http://127.0.0.1:8080/ready

- name: Copy an archive built on the controller (its checksum is computed there and checked on the host)
  zerodowntime.rollout.app_prepare:
    path: /srv/shop
    version: "2.4.2"
    src: "{{ playbook_dir }}/build/shop-2.4.2.tar.gz"
    artifact_from: controller
    health_url: http://127.0.0.1:8080/ready

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
source:
  description:
    - Where the archive came from, with O(artifact_from=controller).
    - C(from) (V(controller)), C(kind) (V(path), V(url) or V(s3)), C(src) (redacted), C(checksum) (as verified on
      the controller), C(size) in bytes, C(fetched) (the controller fetched it for this host; false when the run's
      cached copy was used or nothing was needed), C(copied) (a copy was sent to this host), C(would_copy) (check
      mode).
  returned: when O(artifact_from) resolves to V(controller)
  type: dict
  sample: {"from": "controller", "kind": "s3", "src": "s3://shop-artifacts/shop-2.4.1.tar.gz", "copied": true}
src_needed:
  description: With O(defer_src), whether the host needs the archive to unpack O(version).
  returned: with O(defer_src)
  type: bool
copy_room:
  description: With O(defer_src) and RV(src_needed), bytes the filesystem of O(copy_dir) can take, or null.
  returned: with O(defer_src) when RV(src_needed)
  type: int
msg:
  description: A one-line summary.
  returned: always
  type: str
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import resolve  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._download import make_fetch  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import (  # noqa: E402
    READINESS_SPEC,
    readiness_probe,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._prepare import prepare_app  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import Service, deadline_runner  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import is_s3  # noqa: E402

RELEASE_OPTIONS = ("checksum", "allow_unverified", "keep", "min_free_space", "shared_paths", "owner", "group")


def argument_spec():
    spec = {
        "path": {"type": "path", "required": True},
        "version": {"type": "str", "required": True},
        "src": {"type": "str", "required": True},
        "artifact_from": {"type": "str", "default": "auto", "choices": ["auto", "host", "controller"]},
        "s3_endpoint_url": {"type": "str", "default": ""},
        "region": {"type": "str", "default": ""},
        "max_size": {"type": "str", "default": ""},
        "download_timeout": {"type": "int", "default": 300},
        "defer_src": {"type": "bool", "default": False},
        "copy_dir": {"type": "path"},
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


def run(params, module):
    release_args = {name: params[name] for name in RELEASE_OPTIONS}
    release_args["src"] = params["src"]
    controller_side = is_s3(params["src"]) or params["artifact_from"] == "controller"
    if (
        not params["defer_src"]
        and controller_side
        and resolve(params["src"], params["artifact_from"])[0] == "controller"
    ):
        raise ValidationError(
            "artifact_from=controller needs the collection's app_prepare action plugin (run the module as the "
            "task zerodowntime.rollout.app_prepare, not through another action)."
        )
    # The download keeps min_free_space free too, within download_timeout and max_size.
    release_args["fetch"] = make_fetch(
        timeout=params["download_timeout"], max_size=params["max_size"], min_free_space=params["min_free_space"]
    )
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
        defer_src=params["defer_src"],
        copy_dir=params["copy_dir"],
    )
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    # the invocation in the result shows params as they end: no secret of a URL or of a command line in it
    run_module(
        module, lambda params: run(params, module), secret_params=["src", "health_url", "start_command", "stop_command"]
    )


if __name__ == "__main__":
    main()
