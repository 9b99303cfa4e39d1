# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""One HTTP fetch for the modules that probe an endpoint: ``fetch(timeout) -> (status, body)``.

HTTP error statuses are answers, not exceptions; the body is read up to a cap."""

from urllib.error import HTTPError

from ansible.module_utils.urls import open_url

MAX_BODY = 1024 * 1024


def request(url, timeout, method="GET", headers=None, validate_certs=True, ca_path=None, agent=None, max_body=MAX_BODY):
    """One request: ``(status, body)``, an HTTP error status being an answer too; at most ``max_body`` bytes read."""
    try:
        response = open_url(
            url,
            method=method.upper(),
            headers=headers or {},
            validate_certs=validate_certs,
            ca_path=ca_path,
            timeout=timeout,
            http_agent=agent or "zerodowntime.rollout",
        )
    except HTTPError as exc:
        try:
            body = exc.read(max_body) or b""
        except Exception:
            body = b""
        return exc.code, body
    try:
        return response.getcode(), response.read(max_body) or b""
    finally:
        response.close()


def make_fetch(url, method="GET", headers=None, validate_certs=True, ca_path=None, agent="zerodowntime.rollout"):
    """A ``fetch(timeout) -> (status, body)`` for one URL, as the probes want it."""

    def fetch(timeout):
        return request(url, timeout, method, headers, validate_certs, ca_path, agent)

    return fetch


def readiness_probe(params, consecutive_successes, timeout, clock=None, sleep=None):
    """A HealthProbe from the modules' ``health_*`` options (see the readiness doc fragment)."""
    # Imported here: _http_health is plain Python, this file is the one that knows Ansible's URL code.
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._http_health import HealthProbe

    url = params.get("health_url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValidationError("health_url must start with http:// or https://, got %r." % (url,))
    options = {}
    if params.get("health_json_path"):
        options["json_path"] = params["health_json_path"]
        value = params.get("health_json_value")
        if value is not None and not (isinstance(value, str) and value == ""):
            options["json_value"] = value
    fetch = make_fetch(
        url,
        headers=params.get("health_headers") or {},
        validate_certs=params.get("health_validate_certs", True),
        agent="zerodowntime.rollout-readiness",
    )
    return HealthProbe(
        fetch,
        url=url,
        status_codes=params.get("health_status_codes") or [200],
        body_regex=params.get("health_body_regex") or None,
        consecutive_successes=consecutive_successes,
        interval=params.get("health_interval") or 0.5,
        timeout=timeout,
        request_timeout=params.get("health_request_timeout") or 5,
        clock=clock,
        sleep=sleep,
        **options,
    )


READINESS_SPEC = {
    "health_url": {"type": "str", "required": True},
    "health_headers": {"type": "dict", "default": {}, "no_log": True},
    "health_status_codes": {"type": "list", "elements": "int", "default": [200]},
    "health_body_regex": {"type": "str"},
    "health_json_path": {"type": "str"},
    "health_json_value": {"type": "raw"},
    "health_interval": {"type": "float", "default": 0.5},
    "health_request_timeout": {"type": "float", "default": 5},
    "health_validate_certs": {"type": "bool", "default": True},
}
