#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


DOCUMENTATION = r"""
---
module: http_health
short_description: Wait until an HTTP endpoint answers successfully several times in a row
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - A readiness probe, run on the target host, typically against the application on C(127.0.0.1) before the
    host goes back into the load balancer.
  - Requests O(url) every O(interval) seconds. An answer passes when its status is in O(status_codes), and its
    body matches O(body_regex) and has the expected O(json_path) value, when those are given.
  - Succeeds after O(consecutive_successes) passing answers in a row. Any failed attempt (connection error,
    timeout, unexpected status or body) resets the count.
  - Fails after O(timeout) seconds with the last status code, the last error and the start of the last body.
  - Uses Ansible's own URL code, so the target needs no extra package.
  - Never reports a change.
options:
  url:
    description:
      - URL to probe, C(http://) or C(https://).
      - User info and query string are left out of messages.
    type: str
    required: true
  method:
    description:
      - HTTP method.
    type: str
    default: GET
  headers:
    description:
      - Request headers. Their values are treated as secrets (for example C(Authorization)) and never shown in
        results or messages.
    type: dict
  status_codes:
    description:
      - Status codes that count as a success.
    type: list
    elements: int
    default: [200]
  body_regex:
    description:
      - Python regular expression searched in the response body (decoded as UTF-8).
    type: str
  json_path:
    description:
      - Dotted path into a JSON response body, for example V(checks.database). Integer components index lists,
        for example V(items.0.name). Keys that contain a dot cannot be addressed.
      - Without O(json_value), the value must be present and not empty, false, zero or null.
    type: str
  json_value:
    description:
      - Expected value at O(json_path).
      - Compared by meaning, not by type, so JSON V(true) matches V(true) and V('true'), and JSON V(1) matches
        V(1), V(1.0) and V('1'). Strings are compared case-sensitively. A null value cannot be expected.
    type: raw
  consecutive_successes:
    description:
      - Passing answers needed in a row.
    type: int
    default: 3
  interval:
    description:
      - Seconds between two attempts.
    type: float
    default: 1.0
  timeout:
    description:
      - Seconds to wait in total before failing. V(0) means a single attempt.
      - The last attempt may run past it by at most one O(request_timeout).
    type: float
    default: 120
  request_timeout:
    description:
      - Seconds one request may take.
    type: float
    default: 5
  validate_certs:
    description:
      - Validate the server's TLS certificate for C(https://) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of CA certificates to validate the server certificate with.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The probe runs in check mode too for V(GET), V(HEAD) and V(OPTIONS); other methods are not sent.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: zerodowntime.rollout.release
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Wait until the application answers 200 three times in a row
  zerodowntime.rollout.http_health:
    url: http://127.0.0.1:8080/healthz
    timeout: 120

- name: Wait until the database check of the health document is up
  zerodowntime.rollout.http_health:
    url: https://127.0.0.1:8443/status
    ca_path: /etc/shop/ca.pem
    headers:
      Authorization: "Bearer {{ shop_health_token }}"
    json_path: checks.database
    json_value: true
    consecutive_successes: 5
    interval: 2

- name: Accept a redirect as ready, as long as the page says so
  zerodowntime.rollout.http_health:
    url: http://127.0.0.1/ready
    status_codes: [200, 302]
    body_regex: "ready|redirecting"
"""

RETURN = r"""
msg:
  description: How the probe ended.
  returned: always
  type: str
  sample: "http://127.0.0.1:8080/healthz is ready: 3 consecutive successes after 7 attempts in 6.0s"
attempts:
  description: Requests made.
  returned: always
  type: int
  sample: 7
successes:
  description: Passing answers in a row at the end (equal to O(consecutive_successes) on success).
  returned: always
  type: int
  sample: 3
elapsed:
  description: Seconds spent probing.
  returned: always
  type: float
  sample: 6.012
status:
  description: Status code of the last answer; null when the last attempt got no answer.
  returned: always
  type: int
  sample: 200
last_error:
  description: Why the most recent failed attempt failed; null when no attempt failed.
  returned: always
  type: str
  sample: status 503 is not one of [200]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import make_fetch  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import probe_http  # noqa: E402


def argument_spec():
    return {
        "url": {"type": "str", "required": True},
        "method": {"type": "str", "default": "GET"},
        "headers": {"type": "dict", "no_log": True},
        "status_codes": {"type": "list", "elements": "int", "default": [200]},
        "body_regex": {"type": "str"},
        "json_path": {"type": "str"},
        "json_value": {"type": "raw"},
        "consecutive_successes": {"type": "int", "default": 3},
        "interval": {"type": "float", "default": 1.0},
        "timeout": {"type": "float", "default": 120},
        "request_timeout": {"type": "float", "default": 5},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
    }


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_by={"json_value": ["json_path"]},
    )
    params = module.params
    try:
        result = probe_http(
            make_fetch(
                params["url"],
                method=params["method"],
                headers=params["headers"],
                validate_certs=params["validate_certs"],
                ca_path=params["ca_path"],
                agent="zerodowntime.rollout-http_health",
            ),
            url=params["url"],
            check_mode=module.check_mode,
            method=params["method"],
            status_codes=params["status_codes"],
            body_regex=params["body_regex"],
            json_path=params["json_path"],
            json_value=params["json_value"],
            consecutive_successes=params["consecutive_successes"],
            interval=params["interval"],
            timeout=params["timeout"],
            request_timeout=params["request_timeout"],
        )
    except RolloutError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
