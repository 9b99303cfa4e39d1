#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: rotation
short_description: Take one server out of its load balancers' rotation, or put it back, in one call
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The load balancer half of a host's zero-downtime transaction, as one call per load balancer host (HAProxy) or
    one call for all the AWS load balancers of a target (ELBv2 target groups, Classic ELBs). The
    C(zerodowntime.rollout.rolling_update) role uses it for every load balancer; it can be called from any playbook.
  - Every name is validated and every socket is read before the first command is sent. A socket that does not
    answer, a backend or server it does not know, or a capacity guard that says no fails the call with nothing
    changed.
  - O(state=out) evaluates the capacity guard (O(min_healthy)) on that same read, writes the resume record, sets
    the server to drain and waits until its in-flight requests are finished.
  - O(state=in) sets the server ready, waits until HAProxy's own health check reports it steadily C(UP) (or
    C(no check)), then removes the resume record.
  - O(state=read) only reads. It reports whether the server is in rotation on every socket and whether a resume
    record says that a rollout took it out.
  - The resume record is a small JSON file in C(<state_dir>/rotation/) on the host that runs this module. It is
    written before the drain command goes out, kept when an interrupted run left one, and removed once the server is
    back. So the next run can tell "drained by a rollout" from "taken out by someone else".
  - "O(state=weighted) (weighted canary, HAProxy only) gives the servers in O(batch) O(share) percent of the
    backend's traffic on every socket with C(set server <backend>/<server> weight N): every canary server gets the same
    weight, computed from the weights of the other servers in rotation, and when the share cannot be reached otherwise
    (three other servers at weight 1 already leave a canary at weight 1 with 25%) the other servers' weights are
    multiplied by the smallest whole factor that gets within half a point (or 5% of the share), at most up to 256.
    The original weights of every server go to a weights record (C(<state_dir>/rotation/haproxy_weights-*.json), one
    per backend) before the first weight is changed; a share that no weights up to 256 come within a point (or a
    quarter of the share) of is refused with nothing changed."
  - O(state=in) with O(share) sets those weights first, while the servers of O(batch) are still out of rotation, so a
    weighted canary never takes a round-robin share of the traffic; then it sets the server ready and waits.
  - O(state=unweighted) puts the weights of the weights record back and removes it (nothing to do without a record).
    O(state=out) does the same first when an interrupted run left a weights record, so the next run's drain puts the
    weights back.
  - Results carry RV(steps), the seconds this call spent in its step (C(drain) or C(enable)), which the rollout
    report lays out.
  - "With the AWS providers (O(provider=elbv2), O(provider=elb_classic)) the server is an AWS target (O(target_id)).
    O(state=read) resolves or discovers its target groups (or Classic ELBs) and reads each once. O(state=out) evaluates
    the capacity guard on that read (the targets AWS reports C(healthy), or the instances C(InService)), writes the
    resume record with exactly where the target is registered (target groups and ports, or ELB names), deregisters it
    and waits until the load balancers have drained it (by default the longest deregistration delay plus 60 seconds,
    or the connection-draining timeout). O(state=in) registers it back exactly where the resume record says, waits
    until it is C(healthy) (C(InService)) everywhere and removes the record. The AWS calls, waits (polls backing off
    from O(poll_interval) up to 15 seconds, with jitter) and messages are those of M(zerodowntime.rollout.elbv2_target)
    and M(zerodowntime.rollout.elb_classic_instance)."
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.rotation
  - zerodowntime.rollout.rotation.haproxy_options
  - zerodowntime.rollout.rotation.aws_options
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details:
      - Reads, evaluates the capacity guard and reports what would change; sends no change, writes or removes no
        resume record and waits for nothing.
  diff_mode:
    support: full
    details:
      - The status, admin state and weight on every socket, before and after; with the AWS providers, the target's
        state per target group and port (per Classic ELB).
  platform:
    platforms: posix
seealso:
  - module: zerodowntime.rollout.haproxy_server
  - module: zerodowntime.rollout.elbv2_target
  - module: zerodowntime.rollout.elb_classic_instance
  - module: zerodowntime.rollout.app_replace
notes:
  - C(changed) only depends on the admin state (with AWS, on a registration or deregistration), never on live counters
    such as sessions.
  - The AWS connection options (region, endpoint, credentials) and boto3 matter only with the AWS providers. They are
    read as amazon.aws's modules read them, from the options or the environment of the host that runs the module.
  - With a local connection and no privilege escalation, the HAProxy provider runs in the controller's worker
    process (no module is shipped); the AWS providers always run as a module, so that the task's C(environment) and
    the host's AWS configuration apply as for any AWS module.
"""

EXAMPLES = r"""
- name: Take web1 out of every HAProxy on the LB host, unless fewer than 2 servers would stay
  zerodowntime.rollout.rotation:
    state: out
    backend: app
    server: web1
    sockets: [/run/haproxy/admin.sock]
    min_healthy: "2"
    timeout: 300
  delegate_to: lb1

- name: Put it back and wait until HAProxy reports it UP
  zerodowntime.rollout.rotation:
    state: in
    backend: app
    server: web1
  delegate_to: lb1

- name: Is web1 in rotation, and did a rollout take it out?
  zerodowntime.rollout.rotation:
    state: read
    backend: app
    server: web1
  delegate_to: lb1
  register: web1_rotation

- name: Weighted canary - give web1 10% of the backend's traffic (the original weights are recorded first)
  zerodowntime.rollout.rotation:
    state: weighted
    backend: app
    server: web1
    share: 10
  delegate_to: lb1

- name: Put the recorded weights back
  zerodowntime.rollout.rotation:
    state: unweighted
    backend: app
    server: web1
  delegate_to: lb1

- name: Deregister this instance from every target group it is in, unless fewer than 2 healthy targets would stay
  zerodowntime.rollout.rotation:
    provider: elbv2
    state: out
    target_id: "{{ instance_id }}"
    region: eu-west-1
    min_healthy: "2"
  delegate_to: localhost

- name: Register it back in exactly those target groups and ports, and wait until it is healthy
  zerodowntime.rollout.rotation:
    provider: elbv2
    state: in
    target_id: "{{ instance_id }}"
    region: eu-west-1
  delegate_to: localhost
"""

RETURN = r"""
msg:
  description: What was found or done, and the capacity guard's verdict.
  returned: always
  type: str
  sample: Set app/web1 to drain on /run/haproxy/admin.sock. Drained everywhere after 0.3s (2 polls).
steps:
  description: The step this call performed and its duration in seconds (V(drain) or V(enable)).
  returned: when O(state) is V(out) or V(in)
  type: list
  elements: dict
  sample: [{"name": "drain", "seconds": 0.41, "waited": 0.3}]
capacity:
  description: The capacity guard's verdict (C(ok), C(lbs), C(msg)); null when O(min_healthy) is 0.
  returned: when O(state=out)
  type: dict
in_rotation:
  description:
    - True when the server is ready and steadily UP (or C(no check)) on every socket.
    - With the AWS providers, true when the target is registered somewhere and C(healthy) (C(InService)) everywhere
      it is registered.
  returned: when O(state=read)
  type: bool
admin_down:
  description: True when some socket has the server in drain or maint.
  returned: when O(state=read) with O(provider=haproxy)
  type: bool
found:
  description: True when every socket knows the server; with the AWS providers, when the target is registered somewhere.
  returned: when O(state=read)
  type: bool
places:
  description:
    - With the AWS providers, where the target is registered (draining included), as read before any change; one entry
      per target group and port (RV(target_groups)) or per Classic ELB (RV(load_balancers)).
  returned: when O(state=read) with an AWS provider
  type: list
  elements: dict
searched:
  description:
    - With the AWS providers, the target groups (O(target_groups)) or Classic ELBs (O(load_balancers)) given, or null
      when they were discovered.
  returned: when O(state=read) with an AWS provider
  type: list
  elements: str
rows:
  description:
    - With the AWS providers, what the capacity guard counts, one row per target group (Classic ELB) read, C(where)
      and C(servers) (C(<id>:<port>) or the instance id -> in rotation).
  returned: when O(state=read) with an AWS provider
  type: list
  elements: dict
target_groups:
  description:
    - With O(provider=elbv2), one entry per target group and port handled, as M(zerodowntime.rollout.elbv2_target)
      returns them (C(target_group_arn), C(target_group_name), C(port), C(changed), C(before), C(after),
      C(group_targets)).
  returned: with O(provider=elbv2)
  type: list
  elements: dict
load_balancers:
  description:
    - With O(provider=elb_classic), one entry per Classic ELB handled, as M(zerodowntime.rollout.elb_classic_instance)
      returns them (C(load_balancer_name), C(changed), C(before), C(after)).
  returned: with O(provider=elb_classic)
  type: list
  elements: dict
record_written:
  description: True when this call wrote the resume record (before its first change).
  returned: when O(state=out)
  type: bool
resumed:
  description: True when a resume record was already there (an interrupted run took the server out).
  returned: when O(state=out)
  type: bool
weights_restored:
  description: True when O(state=out) first put back the weights an interrupted weighted canary left (weights record).
  returned: when O(state=out) with O(provider=haproxy)
  type: bool
weights_record:
  description: The weights record a weighted canary left on this backend (original weights per socket), or null.
  returned: when O(state) is V(read) or V(unweighted), with O(provider=haproxy)
  type: dict
weights_record_path:
  description: Where the backend's weights record is kept on this host.
  returned: when O(state) is V(weighted) or V(unweighted), or O(state=in) with O(share)
  type: str
achieved:
  description: With O(state=weighted) (or O(state=in) with O(share)), the share (percent) the new weights give the
    batch, the lowest over the sockets.
  returned: when O(state=weighted), or O(state=in) with O(share)
  type: float
  sample: 10.0
restored:
  description: With O(state=unweighted), true when a weights record was put back and removed.
  returned: when O(state=unweighted)
  type: bool
record_removed:
  description: True when this call removed the resume record.
  returned: when O(state=in)
  type: bool
registered_from:
  description:
    - With the AWS providers, where O(state=in) took the places from, V(record) (the resume record), V(given)
      (O(target_groups) or O(load_balancers)) or V(current) (where the target is registered).
  returned: when O(state=in) with an AWS provider
  type: str
api_calls:
  description: With the AWS providers, the AWS API requests made (the retries of throttled requests included).
  returned: with an AWS provider
  type: int
members:
  description: One row per socket with C(socket), C(found), C(status), C(admin_state), C(weight), C(sessions),
    C(in_rotation).
  returned: when O(state=read)
  type: list
  elements: dict
batch_reads:
  description:
    - With O(batch), per server of the batch (O(server) included) what RV(found), RV(in_rotation), RV(admin_down),
      RV(members), RV(record) and RV(record_path) give for O(server), plus C(missing) (the sockets that do not know
      it), from the same read of each socket.
  returned: when O(state=read) with O(batch) and O(provider=haproxy)
  type: dict
  sample: {"web2": {"found": true, "missing": [], "in_rotation": true, "admin_down": false, "members": [],
           "record": null, "record_path": "/var/lib/zerodowntime-rollout/rotation/haproxy-be_app-web2-1a2b.json"}}
read_for:
  description:
    - With O(batch), what was read, C(backend), C(sockets) (as given, normalised) and C(state_dir); also when the read
      failed, so that a caller can tell whether it answers for another server's settings.
  returned: when O(state=read) with O(batch) and O(provider=haproxy)
  type: dict
record:
  description:
    - The resume record left by a rollout that took the server out, or null.
    - With the AWS providers and O(state=out), the record as written (or, in check mode, as it would be); its
      C(places) are the target groups and ports (C(target_group_arn), C(target_group_name), C(port)) or the Classic
      ELB names the target is registered back in.
  returned: when O(state=read); with an AWS provider also when O(state=out)
  type: dict
record_path:
  description: Where the resume record is kept on this host.
  returned: always
  type: str
weights:
  description: With O(state=in) and O(share), per socket the weights set before the server went back in rotation, as
    RV(sockets) gives them with O(state=weighted).
  returned: when O(state=in) with O(share), with O(provider=haproxy)
  type: list
  elements: dict
sockets:
  description: With O(state=read), every socket's backend as M(zerodowntime.rollout.haproxy_server_info) returns
    it; with O(state=weighted) or O(state=unweighted), per socket the weights C(before) and C(after) and the
    C(commands) sent (with O(state=weighted) also the C(share) reached, the C(scale) of the other servers' weights
    and the C(canary_weight)); otherwise the per-socket change entries as M(zerodowntime.rollout.haproxy_server)
    returns them.
  returned: with O(provider=haproxy)
  type: list
  elements: dict
"""

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import (  # noqa: E402
    run_module as end_module,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import DEFAULT_STATE_DIR  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._rotation.haproxy import run_rotation  # noqa: E402

PROVIDERS = ("haproxy", "elbv2", "elb_classic")
REQUIRED_IF = [
    ("provider", "haproxy", ["backend", "server"]),
    ("state", "weighted", ["share"]),
    ("provider", "elbv2", ["target_id"]),
    ("provider", "elb_classic", ["target_id"]),
]


def argument_spec():
    """The module's own options (the AWS providers add amazon.aws's connection options, see main())."""
    return {
        "provider": {"type": "str", "default": "haproxy", "choices": list(PROVIDERS)},
        "state": {"type": "str", "required": True, "choices": ["out", "in", "read", "weighted", "unweighted"]},
        "backend": {"type": "str"},
        "server": {"type": "str"},
        "sockets": {"type": "list", "elements": "str", "default": ["/run/haproxy/admin.sock"]},
        "batch": {"type": "list", "elements": "str"},
        "share": {"type": "float"},
        "min_healthy": {"type": "str", "default": "0"},
        "timeout": {"type": "float"},
        "on_timeout": {"type": "str", "default": "fail", "choices": ["fail", "shutdown_sessions"]},
        "poll_interval": {"type": "float"},
        "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
        "run_id": {"type": "str"},
        "version": {"type": "str"},
        "target_id": {"type": "str"},
        "target_groups": {"type": "list", "elements": "str"},
        "port": {"type": "int"},
        "load_balancers": {"type": "list", "elements": "str"},
    }


def module_spec():
    """What validates the arguments (the action plugin's in-process path uses it too)."""
    return {"argument_spec": argument_spec(), "required_if": REQUIRED_IF}


def plain_haproxy(args):
    """True when ``args`` (the task's or module's raw arguments) ask for HAProxy with only this module's own options.

    Anything else (an AWS provider, or amazon.aws's connection options, which C(module_defaults) may bring) needs
    amazon.aws's module class, whose import loads boto3 (about half a second): only then is it imported."""
    if not isinstance(args, dict):
        return False
    own = argument_spec()
    return (args.get("provider") or "haproxy") == "haproxy" and all(
        key in own or key.startswith("_ansible_") for key in args
    )


def run_module(params, check_mode=False, diff=False):
    """The HAProxy provider (``params`` validated)."""
    params = dict(params)
    if params["timeout"] is None:
        params["timeout"] = 300 if params["state"] == "out" else 120
    if params.get("poll_interval") is None:
        params["poll_interval"] = 0.25
    return run_rotation(params["provider"], params["state"], params, check_mode=check_mode, diff=diff)


def _main_aws(check_boto3):
    """Every provider through amazon.aws's module class (its connection options, client and AWS failures)."""
    from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.module_main import end_module as end_aws
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.rotation import run_aws_rotation
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.rotation_providers import make_rotation

    module = AnsibleAWSModule(supports_check_mode=True, check_boto3=check_boto3, **module_spec())
    params = module.params
    if params["provider"] == "haproxy":
        _main_haproxy(module)
        return
    end_aws(
        module,
        "elbv2" if params["provider"] == "elbv2" else "elb",
        lambda client: make_rotation(params["provider"], client, params, aws_retry=True),
        lambda member: run_aws_rotation(member, params["state"], params, module.check_mode, module._diff),
    )


def _main_haproxy(module):
    end_module(module, lambda params: run_module(params, module.check_mode, module._diff))


def main():
    raw = basic._load_params()  # None only for documentation tooling: then the complete module (AWS options too)
    if raw is None or not plain_haproxy(raw):
        _main_aws(check_boto3=(raw or {}).get("provider") in ("elbv2", "elb_classic"))
        return
    _main_haproxy(AnsibleModule(supports_check_mode=True, **module_spec()))


if __name__ == "__main__":
    main()
