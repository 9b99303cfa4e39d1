# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The rolling_update role's settings, checked together before anything is read or changed.

The role's argument spec checks each option's type and choices; these are the rules that tie options together (a
systemd unit for ``service_manager=systemd``, a checksum for a URL artifact, ...) and the patterns a value must
fully match. :func:`check` returns every broken rule at once, one sentence each, naming the variable and the
value, with URLs redacted. Pure: no Ansible, no I/O.
"""

import json
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.names import (
    as_option_text,
    validate_name,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import is_s3, is_url

VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
CHECKSUM_RE = re.compile(r"sha256:[0-9a-fA-F]{64}")
LBS = ("haproxy", "elbv2", "elb_classic", "none")
AWS_LBS = ("elbv2", "elb_classic")
SERVICE_MANAGERS = ("systemd", "command")
ON_TIMEOUT = ("fail", "shutdown_sessions")
ARTIFACT_FROM = ("auto", "host", "controller")
# The HAProxy names, first: a bad one is the most dangerous mistake (a second Runtime API command).
NAME_VARIABLES = ("rolling_update_haproxy_backend", "rolling_update_haproxy_server")


def _shown(value):
    """A value as a message shows it: JSON (a newline reads as \\n), URLs without their credentials."""
    if isinstance(value, str) and "://" in value:
        value = redact_url(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _empty(value):
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_haproxy_name(value):
    """The modules' rule (``validate_name``); an integer counts as its digits, as the modules' str options take it."""
    try:
        validate_name(as_option_text(value))
    except ValidationError:
        return False
    return True


def _name_errors(s):
    out = []
    for variable in NAME_VARIABLES:
        value = s.get(variable)
        if not _is_haproxy_name(value):
            out.append(
                "invalid HAProxy name in %s %s: HAProxy backend and server names may only contain letters, digits, "
                "'-', '_', '.' and ':'; any other character, such as ';' or a newline, could carry a second command "
                "to the HAProxy Runtime API." % (variable, _shown(value))
            )
    return out


def _version_errors(s):
    version = s.get("rolling_update_version")
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version) or ".." in version:
        return [
            "rolling_update_version must be a release name of letters, digits, '.', '_', '+' and '-' that starts "
            "with a letter or digit and has no '..' (got %s)." % _shown(version)
        ]
    return []


def _artifact_errors(s):
    out = []
    artifact = s.get("rolling_update_artifact")
    checksum = s.get("rolling_update_artifact_checksum")
    unverified = _truthy(s.get("rolling_update_allow_unverified"))
    artifact_from = s.get("rolling_update_artifact_from")
    if _empty(artifact):
        out.append("rolling_update_artifact is required: a path, an http(s) URL or s3://bucket/key.")
    if not _empty(checksum) and not (isinstance(checksum, str) and CHECKSUM_RE.fullmatch(checksum)):
        out.append("rolling_update_artifact_checksum must be sha256:<64 hex digits> (got %s)." % _shown(checksum))
    if artifact_from not in ARTIFACT_FROM:
        out.append("rolling_update_artifact_from must be auto, host or controller (got %s)." % _shown(artifact_from))
    if isinstance(artifact, str):
        remote = "an http(s) URL" if is_url(artifact) else "an s3:// URL" if is_s3(artifact) else None
        if remote and _empty(checksum) and not unverified:
            out.append(
                "rolling_update_artifact %s is %s: give rolling_update_artifact_checksum (sha256:<hex>), or set "
                "rolling_update_allow_unverified to true to deploy it unverified." % (_shown(artifact), remote)
            )
        if is_s3(artifact) and artifact_from == "host":
            out.append(
                "rolling_update_artifact %s is an s3:// URL, which the controller fetches: set "
                "rolling_update_artifact_from to auto or controller, not host." % _shown(artifact)
            )
    return out


def _host_errors(s):
    out = []
    path = s.get("rolling_update_path")
    if not (isinstance(path, str) and path.startswith("/")):
        out.append("rolling_update_path must be an absolute path (got %s)." % _shown(path))
    manager = s.get("rolling_update_service_manager")
    if manager not in SERVICE_MANAGERS:
        out.append("rolling_update_service_manager must be systemd or command (got %s)." % _shown(manager))
    elif manager == "systemd" and _empty(s.get("rolling_update_service_name")):
        out.append("rolling_update_service_manager systemd needs rolling_update_service_name (the unit).")
    elif manager == "command" and (
        _empty(s.get("rolling_update_start_command")) or _empty(s.get("rolling_update_stop_command"))
    ):
        out.append(
            "rolling_update_service_manager command needs both rolling_update_start_command and "
            "rolling_update_stop_command."
        )
    url = s.get("rolling_update_health_url")
    if not is_url(url):
        out.append("rolling_update_health_url must be an http:// or https:// URL (got %s)." % _shown(url))
    return out


def _lb_errors(s):
    out = []
    lb = s.get("rolling_update_lb")
    if lb not in LBS:
        out.append("rolling_update_lb must be haproxy, elbv2, elb_classic or none (got %s)." % _shown(lb))
    if lb in AWS_LBS and _empty(s.get("rolling_update_aws_target_id")):
        out.append(
            "rolling_update_lb %s needs a target: rolling_update_aws_target_id (default: the instance_id host "
            "variable)." % lb
        )
    if lb == "haproxy" and (
        _empty(s.get("rolling_update_haproxy_delegate_to")) or _empty(s.get("rolling_update_haproxy_sockets"))
    ):
        out.append(
            "rolling_update_lb haproxy needs the HAProxy hosts (rolling_update_haproxy_delegate_to) and their admin "
            "sockets (rolling_update_haproxy_sockets)."
        )
    on_timeout = s.get("rolling_update_drain_on_timeout")
    if on_timeout not in ON_TIMEOUT:
        out.append("rolling_update_drain_on_timeout must be fail or shutdown_sessions (got %s)." % _shown(on_timeout))
    weight = _number(s.get("rolling_update_canary_weight", 0))
    if weight is None or (weight != 0 and not (lb == "haproxy" and 0 < weight < 100)):
        out.append(
            "rolling_update_canary_weight (a percentage, more than 0 and less than 100) needs "
            "rolling_update_lb=haproxy (got %s with %s): the AWS load balancers have no weighted canary in this "
            "release, so set it to 0 there." % (_shown(s.get("rolling_update_canary_weight")), _shown(lb))
        )
    return out


def _canary_errors(s):
    """The canary's baseline exclusions are concatenated with the surge servers: a list of HAProxy names."""
    out = []
    for variable in ("rolling_update_canary_exclude", "rolling_update_surge_servers"):
        names = s.get(variable, [])
        if not isinstance(names, list):
            out.append(
                "%s must be a list of HAProxy server names (got %s); on the command line give it as JSON, for "
                'example -e \'{"%s": ["web9"]}\'.' % (variable, _shown(names), variable)
            )
            continue
        out.extend(
            "invalid HAProxy server name in %s: %s." % (variable, _shown(name))
            for name in names
            if not _is_haproxy_name(name)
        )
    return out


def check(settings, host):
    """``{'ok', 'errors', 'msg'}`` for one host's settings (a dict keyed by the role's variable names).

    ``rolling_update_haproxy_delegate_to`` is given as a list (the role flattens it). The HAProxy names, and the
    canary's lists of them, are checked only with ``rolling_update_lb`` haproxy."""
    s = settings if isinstance(settings, dict) else {}
    haproxy = s.get("rolling_update_lb") == "haproxy"
    errors = _name_errors(s) if haproxy else []
    names_bad = bool(errors)
    if haproxy:
        errors.extend(_canary_errors(s))
    for rules in (_version_errors, _artifact_errors, _host_errors, _lb_errors):
        errors.extend(rules(s))
    if not errors:
        return {"ok": True, "errors": [], "msg": "The settings of %s are consistent." % host}
    tail = (
        "Nothing was sent to HAProxy and nothing was changed."
        if names_bad
        else ("Nothing was read or changed on any load balancer or host.")
    )
    return {
        "ok": False,
        "errors": errors,
        "msg": "Refusing %s: %s %s See the role's argument specs (ansible-doc -t role "
        "zerodowntime.rollout.rolling_update) for every option." % (host, " ".join(errors), tail),
    }
