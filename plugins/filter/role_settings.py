# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: role_settings
short_description: Check the rolling_update role's settings together, before anything is read
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The rules of the C(zerodowntime.rollout.rolling_update) role that tie its options together, which its argument
    spec cannot express - a unit name with O(_input.rolling_update_service_manager=systemd), start and stop commands
    with V(command), a checksum for a URL or s3:// artifact unless unverified artifacts are allowed, a weighted canary
    only with HAProxy - and the patterns a value must fully match - the release name, the checksum, the HAProxy
    backend and server names (the rule the HAProxy modules apply).
  - Returns every broken rule at once, one sentence each, naming the variable and its value (URLs without their
    credentials). The role's preflight fails with C(msg) before any load balancer is read.
options:
  _input:
    description:
      - The settings, keyed by the role's variable names (C(rolling_update_version), C(rolling_update_artifact),
        C(rolling_update_haproxy_server), ...); C(rolling_update_haproxy_delegate_to) as a list.
    type: dict
    required: true
  host:
    description: The host the settings belong to, for the message.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the settings
  ansible.builtin.assert:
    that: check.ok
    fail_msg: "{{ check.msg }}"
  vars:
    check: >-
      {{ {'rolling_update_version': 'v2', 'rolling_update_artifact': '/srv/app-v2.tar.gz',
          'rolling_update_path': '/srv/app', 'rolling_update_lb': 'none', 'rolling_update_service_manager': 'systemd',
          'rolling_update_service_name': 'app.service', 'rolling_update_health_url': 'http://127.0.0.1:8080/ready',
          'rolling_update_artifact_from': 'auto', 'rolling_update_drain_on_timeout': 'fail'}
         | zerodowntime.rollout.role_settings(inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: C(ok) (bool), C(errors) (one sentence per broken rule) and C(msg) (the refusal, or that the settings
    are consistent).
  type: dict
"""

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._role_settings import check  # noqa: E402


def role_settings(settings, host):
    return check(settings, host)


class FilterModule:
    def filters(self):
        return {"role_settings": role_settings}
