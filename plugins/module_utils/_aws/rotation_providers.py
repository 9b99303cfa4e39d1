# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The two AWS providers of the rotation (:class:`.rotation.AWSRotation`): where each finds a target, what its
resume record holds, and where it registers the target back.

* :class:`ELBv2Rotation`: one target (instance id, IP address or ALB ARN) in ELBv2 target groups, recorded as target
  group ARNs and ports.
* :class:`ClassicELBRotation`: one EC2 instance in Classic ELBs, recorded as ELB names.
* :func:`make_rotation` picks one for a provider name.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import dedupe
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.capacity import classic_rows, elbv2_rows
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elb_classic import (
    DEFAULT_TIMEOUT as CLASSIC_DEFAULT_TIMEOUT,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elb_classic import ClassicELBInstance
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2 import ELBv2Targets
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2_health import ABSENT
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.rotation import PUT_BACK_TIMEOUT, AWSRotation
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

AWS_PROVIDERS = ("elbv2", "elb_classic")


class ELBv2Rotation(AWSRotation):
    """One target in ELBv2 target groups (``target_groups``: names or ARNs; None discovers every group it is in).

    ``port``: the target's port; None keeps the port it is registered on in each group."""

    provider = "elbv2"
    MANAGER = ELBv2Targets
    PLACES = "target group"
    # A drain waits for the longest deregistration delay + 60 s unless told otherwise (ELBv2Targets reads it).
    TIMEOUTS = {"registered": PUT_BACK_TIMEOUT, "deregistered": None}

    def __init__(self, client, target_id, state_dir, target_groups=None, port=None, **kwargs):
        super().__init__(client, target_id, state_dir, **kwargs)
        self.target_groups = list(target_groups) if target_groups is not None else None
        self.port = port
        self.lb_options = {"port": port}
        # Arguments the calls share, checked before the first one.
        self.lb.validate(target_id, "deregistered", self.target_groups, port)

    def _given(self):
        return self.target_groups

    def _read_entries(self):
        found = self.lb.locate(self.target_id, "deregistered", self.target_groups)
        return self.lb.plan(found, self.target_id, "deregistered", self.port)

    def _places(self, entries):
        return [e for e in entries if e["before"]["state"] != ABSENT]

    def _rows(self, entries):
        groups = dedupe(((e["target_group_arn"], e["target_group_name"]) for e in entries), key=lambda g: g[0])
        return elbv2_rows([(name, self.lb.members.get(arn, [])) for arn, name in groups])

    def _place_keys(self, places):
        return [
            {"target_group_arn": e["target_group_arn"], "target_group_name": e["target_group_name"], "port": e["port"]}
            for e in places
        ]

    @staticmethod
    def _place_id(place):
        return (place["target_group_arn"], place["port"])

    def _clean_recorded(self, places):
        out = []
        for place in places:
            if not isinstance(place, dict) or not str(place.get("target_group_arn", "")).startswith("arn:"):
                return None
            port = place.get("port")
            if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
                return None
            out.append(
                {
                    "target_group_arn": place["target_group_arn"],
                    "target_group_name": place.get("target_group_name"),
                    "port": port,
                }
            )
        return out

    def _entries_from_record(self, recorded):
        """Read the recorded groups (by ARN) once each and plan one entry per recorded group and port."""
        arns = dedupe(p["target_group_arn"] for p in recorded)
        groups = {g["arn"]: g for g in self.lb.describe_groups(arns)}
        descriptions = {arn: self.lb.target_descriptions(groups[arn], self.target_id) for arn in arns}
        entries = []
        for place in recorded:
            arn = place["target_group_arn"]
            entries.extend(
                self.lb.plan([(groups[arn], descriptions[arn])], self.target_id, "registered", place["port"])
            )
        return entries

    def _replan_registered(self, entries):
        for entry in entries:
            entry["changed"] = entry["before"]["state"] == "draining"
        return entries


class ClassicELBRotation(AWSRotation):
    """One EC2 instance in Classic ELBs (``load_balancers``: names; None discovers every ELB that lists it)."""

    provider = "elb_classic"
    MANAGER = ClassicELBInstance
    PLACES = "Classic ELB"
    TIMEOUTS = {"registered": PUT_BACK_TIMEOUT, "deregistered": CLASSIC_DEFAULT_TIMEOUT}

    def __init__(self, client, target_id, state_dir, load_balancers=None, **kwargs):
        super().__init__(client, target_id, state_dir, **kwargs)
        self.load_balancers = list(load_balancers) if load_balancers is not None else None
        self.lb.validate(target_id, "deregistered", self.load_balancers)

    def _given(self):
        return self.load_balancers

    def _read_entries(self):
        known = self.lb.locate(self.target_id, "deregistered", self.load_balancers)
        healths = {name: self.lb.every_health(name) for name, _instances in known}
        return self.lb.plan(known, self.target_id, "deregistered", healths)

    def _places(self, entries):
        return [e for e in entries if e["before"]["registered"]]

    def _rows(self, entries):
        return classic_rows(
            [(e["load_balancer_name"], self.lb.members.get(e["load_balancer_name"], [])) for e in entries]
        )

    def _place_keys(self, places):
        return [e["load_balancer_name"] for e in places]

    @staticmethod
    def _place_id(place):
        return place

    def _clean_recorded(self, places):
        if not all(isinstance(p, str) and p.strip() for p in places):
            return None
        return list(places)

    def _entries_from_record(self, recorded):
        known = self.lb.describe_load_balancers(recorded)
        return self.lb.plan(known, self.target_id, "registered")

    def _replan_registered(self, entries):
        for entry in entries:
            entry["changed"] = False
        return entries


def make_rotation(provider, client, params, aws_retry=False, **kwargs):
    """The rotation of ``params['target_id']`` for ``provider`` (elbv2 or elb_classic), on ``client``. The options of
    the other providers are ignored (one ``module_defaults`` block may serve every provider)."""
    if provider == "elbv2":
        where = {"target_groups": params.get("target_groups"), "port": params.get("port")}
        return ELBv2Rotation(client, params["target_id"], params["state_dir"], aws_retry=aws_retry, **where, **kwargs)
    if provider == "elb_classic":
        where = {"load_balancers": params.get("load_balancers")}
        return ClassicELBRotation(
            client, params["target_id"], params["state_dir"], aws_retry=aws_retry, **where, **kwargs
        )
    raise ValidationError("provider must be one of %s, got %r." % (", ".join(AWS_PROVIDERS), provider))
