# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The readiness probe options shared by app_replace and app_info.
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
    default: 0.5
  health_request_timeout:
    description: Seconds one request may take.
    type: float
    default: 5
  health_validate_certs:
    description: Validate the TLS certificate for C(https://) URLs.
    type: bool
    default: true
"""
