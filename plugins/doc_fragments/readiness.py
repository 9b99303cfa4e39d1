# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The readiness probe options shared by app_info, app_prepare and app_replace.
    DOCUMENTATION = r"""
options:
  health_url:
    description:
      - Readiness endpoint of the app, C(http://) or C(https://). User info and query string are left out of
        messages.
    type: str
    required: true
  health_headers:
    description:
      - Request headers for the probe. Their values are treated as secrets and never shown.
      - They are sent only to the scheme, host and port of O(health_url), never after a redirect elsewhere.
    type: dict
    default: {}
  health_status_codes:
    description: Status codes that count as ready.
    type: list
    elements: int
    default: [200]
  health_body_regex:
    description: Python regular expression searched in the response body.
    type: str
  health_json_path:
    description:
      - Dotted path into a JSON body, for example V(checks.database); without O(health_json_value) the value must be
        present and not empty, false, zero or null.
    type: str
  health_json_value:
    description: Expected value at O(health_json_path), compared by meaning (V(true) matches V('true')).
    type: raw
  health_interval:
    description: Seconds between two probes.
    type: float
    default: 0.2
  health_request_timeout:
    description:
      - Seconds one request may take in total, from connecting to the last byte of the body, redirects included (a
        deadline for the whole request, not a timeout per read).
      - At most 1 MiB of the body is read.
    type: float
    default: 5
  health_follow_redirects:
    description:
      - Which redirects of O(health_url) to follow.
      - V(none) follows none; a redirect is a failed probe whose error says where it pointed, unless its status is
        listed in O(health_status_codes).
      - V(same_origin) follows redirects that keep the scheme, host and port of O(health_url).
      - V(all) follows any C(http://) or C(https://) redirect, at most 5 in a row.
      - O(health_headers) and the user info of O(health_url) are only ever sent to the scheme, host and port of
        O(health_url).
    type: str
    choices: [none, same_origin, all]
    default: none
  health_validate_certs:
    description: Validate the TLS certificate for C(https://) URLs.
    type: bool
    default: true
"""
