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
  - Each request has one deadline, O(request_timeout), from connecting to the last byte of the body, redirects
    included. A server that sends its answer slowly, byte by byte, fails the attempt at that deadline.
  - At most 1 MiB of each response body is read; O(body_regex) and O(json_path) see only that part.
  - Redirects are not followed by default, see O(follow_redirects).
  - Uses Python's own HTTP code and Ansible's TLS settings, so the target needs no extra package.
  - Never reports a change.
options:
  url:
    description:
      - URL to probe, C(http://) or C(https://).
      - User info (C(http://user:password@host/)) is sent as HTTP basic authentication, to the scheme, host and port
        of this URL only.
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
      - They are sent only to the scheme, host and port of O(url). A redirect to another host or port, allowed by
        O(follow_redirects=all), is requested without any of them.
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
      - Seconds one request may take in total, from connecting to the last byte of the body, redirects included.
      - This is a deadline for the whole request, not a timeout per read.
    type: float
    default: 5
  follow_redirects:
    description:
      - Which redirects (status 301, 302, 303, 307, 308) to follow.
      - V(none) follows none. A redirect is then a failed attempt whose error says where it pointed, unless its
        status is listed in O(status_codes), in which case it is the answer that is checked.
      - V(same_origin) follows redirects that keep the scheme, host and port of O(url) (for example C(/health) to
        C(/health/)). A redirect elsewhere is a failed attempt.
      - V(all) follows any C(http://) or C(https://) redirect, at most 5 in a row. O(headers) and the user info of
        O(url) are never sent to another scheme, host or port.
    type: str
    choices: [none, same_origin, all]
    default: none
    version_added: 0.2.0
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
  - zerodowntime.rollout.app_host
attributes:
  check_mode:
    support: full
    details:
      - The probe runs in check mode too for V(GET), V(HEAD) and V(OPTIONS); other methods are not sent.
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

- name: Accept a redirect as ready, as long as the page says so (the redirect is not followed)
  zerodowntime.rollout.http_health:
    url: http://127.0.0.1/ready
    status_codes: [200, 302]
    body_regex: "ready|redirecting"

- name: Follow the app's redirect from /health to /health/ (same scheme, host and port only)
  zerodowntime.rollout.http_health:
    url: http://127.0.0.1:8080/health
    follow_redirects: same_origin
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

from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import make_fetch, probe_spec  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import probe_http  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402

# The options that shape the request; the probe takes the others (and url, which both need).
FETCH_OPTIONS = ("method", "headers", "validate_certs", "ca_path", "follow_redirects")


def argument_spec():
    spec = probe_spec()
    spec.update(
        method={"type": "str", "default": "GET"},
        consecutive_successes={"type": "int", "default": 3},
        timeout={"type": "float", "default": 120},
        ca_path={"type": "path"},
    )
    return spec


def run(params, check_mode):
    fetch = make_fetch(
        params["url"], agent="zerodowntime.rollout-http_health", **{name: params[name] for name in FETCH_OPTIONS}
    )
    options = {name: value for name, value in params.items() if name not in FETCH_OPTIONS}
    return probe_http(fetch, check_mode=check_mode, method=params["method"], **options)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_by={"json_value": ["json_path"]},
    )
    run_module(module, lambda params: run(params, module.check_mode), secret_params=["url"])


if __name__ == "__main__":
    main()
