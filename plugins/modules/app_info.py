#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: app_info
short_description: Read, in one call, what a rollout needs to know about an app host before it changes anything
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Reads the release layout under O(path) (the release C(current) points to, the previous one, the releases a
    rollback switched away from), checks the artifact (a local file must exist and match O(checksum); a URL must
    answer a C(HEAD) request with 200), and, only when the host already runs O(version), probes readiness once.
  - Fails, naming the problem, when the artifact is missing, corrupt or does not answer. Changes nothing.
  - The C(zerodowntime.rollout.rolling_update) role runs it once per host in its preflight.
options:
  path:
    description: Absolute path of the release layout. A path that does not exist is reported, not an error.
    type: path
    required: true
  version:
    description: The release the rollout wants the host to run.
    type: str
    required: true
  artifact:
    description:
      - The archive of O(version), an absolute path on this host or an C(http(s)) URL. Not checked when omitted.
    type: str
  checksum:
    description: Expected C(sha256:<hex>) of a local O(artifact).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.app_host
  - zerodowntime.rollout.app_host.read_only
  - zerodowntime.rollout.readiness
seealso:
  - module: zerodowntime.rollout.release_info
  - module: zerodowntime.rollout.app_replace
"""

EXAMPLES = r"""
- name: What would a rollout of 2.4.1 find on this host?
  zerodowntime.rollout.app_info:
    path: /srv/shop
    version: "2.4.1"
    artifact: /srv/artifacts/shop-2.4.1.tar.gz
    checksum: "sha256:{{ shop_sha256 }}"
    health_url: http://127.0.0.1:8080/ready
  register: shop
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
unpacked:
  description: True when O(version) is unpacked and complete.
  returned: always
  type: bool
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
artifact:
  description: C(source), C(exists), C(checksum) (of a local file, when one was expected) and C(url).
  returned: when O(artifact) is set
  type: dict
msg:
  description: A one-line summary.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._app_info import read_app  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import (  # noqa: E402
    READINESS_SPEC,
    make_fetch,
    readiness_probe,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402


def argument_spec():
    spec = {
        "path": {"type": "path", "required": True},
        "version": {"type": "str", "required": True},
        "artifact": {"type": "str"},
        "checksum": {"type": "str"},
    }
    spec.update(READINESS_SPEC)
    return spec


def run(params):
    head = None
    if params["artifact"] and params["artifact"].lower().startswith(("http://", "https://")):
        head = make_fetch(
            params["artifact"],
            method="HEAD",
            validate_certs=params["health_validate_certs"],
            follow_redirects="all",  # like the download; this request carries no credentials
        )
    return read_app(
        params["path"],
        params["version"],
        artifact=params["artifact"],
        checksum=params["checksum"],
        quick_probe=readiness_probe(params, 1, 0),
        head=head,
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, run, secret_params=["artifact", "health_url"])


if __name__ == "__main__":
    main()
