"""Fixtures for the AWS module integration tests: a moto server started here, resources made with boto3.

The modules under test run in real ansible-playbook processes against the server's ``endpoint_url``;
state is read back here with boto3, independently of the modules. moto reports ``healthy`` /
``InService`` at once and never ``initial``, ``draining`` or ``unhealthy``: those waits are unit-tested
with a botocore Stubber.

Also a small command line, used by :func:`probe_task` to read moto from inside a playbook::

    python aws_support.py ENDPOINT targets ARN...     ->  {"ARN": [[id, port, state], ...]}
    python aws_support.py ENDPOINT instances NAME...  ->  {"NAME": [instance ids]}
"""

import json
import logging
import os
import sys
import urllib.request

import boto3
import pytest

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
AMI = "ami-12c6146b"  # one of the AMIs moto knows
# Keep the modules' AWS SDK away from any real configuration or instance metadata on this machine.
ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
HERE = os.path.abspath(__file__)


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture():
    """A moto server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    from tests.fixtures.fleet.system import free_port  # here: this file is also a command line (see above)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        yield "http://127.0.0.1:%d" % server._port  # pylint: disable=protected-access
    finally:
        server.stop()


def reset(endpoint):
    request = urllib.request.Request(endpoint + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback test server
        assert answer.status == 200


@pytest.fixture(name="aws")
def aws_fixture(moto_endpoint):
    """An empty moto (reset before the test) and helpers to create and read resources."""
    reset(moto_endpoint)
    return AWS(moto_endpoint)


class AWS:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.ec2 = self.client("ec2")
        self.elbv2 = self.client("elbv2")
        self.elb = self.client("elb")
        self._subnets = None

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **KEYS)

    @property
    def params(self):
        """Connection options for the modules (the amazon.aws common options)."""
        return {
            "endpoint_url": self.endpoint,
            "region": REGION,
            "aws_access_key_id": KEYS["aws_access_key_id"],
            "aws_secret_access_key": KEYS["aws_secret_access_key"],
        }

    # ------------------------------------------------------------------ resources

    def subnets(self):
        if self._subnets is None:
            self.vpc_id = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            self._subnets = [
                self.ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
                for cidr, az in (("10.0.1.0/24", REGION + "a"), ("10.0.2.0/24", REGION + "b"))
            ]
        return self._subnets

    def instances(self, count):
        subnet = self.subnets()[0]
        answer = self.ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, SubnetId=subnet)
        return [i["InstanceId"] for i in answer["Instances"]]

    def alb(self, name="alb"):
        return self.elbv2.create_load_balancer(Name=name, Subnets=self.subnets())["LoadBalancers"][0]["LoadBalancerArn"]

    def target_group(self, name, port=80, delay=5, target_type="instance", lb_arn=None):
        """A target group with a deregistration delay, behind a listener of ``lb_arn`` when given."""
        self.subnets()
        group = self.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=port, VpcId=self.vpc_id, TargetType=target_type
        )["TargetGroups"][0]
        arn = group["TargetGroupArn"]
        self.elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}]
        )
        if lb_arn:
            self.elbv2.create_listener(
                LoadBalancerArn=lb_arn,
                Protocol="HTTP",
                Port=port,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}],
            )
        return arn

    def register(self, arn, *targets, port=None):
        self.elbv2.register_targets(
            TargetGroupArn=arn, Targets=[dict({"Id": t}, **({"Port": port} if port else {})) for t in targets]
        )

    def classic_elb(self, name, draining=None):
        self.elb.create_load_balancer(
            LoadBalancerName=name,
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
            AvailabilityZones=[REGION + "a"],
        )
        if draining is not None:
            self.elb.modify_load_balancer_attributes(
                LoadBalancerName=name,
                LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True, "Timeout": draining}},
            )
        return name

    def elb_register(self, name, *instances):
        self.elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instances]
        )

    # ------------------------------------------------------------------ independent reads

    def targets(self, arn):
        """Sorted ``(id, port, state)`` of every target moto lists in the group."""
        return read_targets(self.elbv2, arn)

    def snapshot(self, arns=(), elbs=()):
        """Everything the modules could change: targets per group, instances per Classic ELB."""
        return {
            "targets": {arn: self.targets(arn) for arn in arns},
            "elbs": {name: self.elb_instances(name) for name in elbs},
        }

    def elb_instances(self, name):
        return read_elb_instances(self.elb, name)


def read_targets(client, arn):
    answer = client.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return sorted((d["Target"]["Id"], d["Target"].get("Port"), d["TargetHealth"]["State"]) for d in answer)


def read_elb_instances(client, name):
    lb = client.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"][0]
    return sorted(i["InstanceId"] for i in lb.get("Instances") or [])


def probe_task(aws, kind, names, fact="probe"):
    """A task reading moto with boto3 (this file's command line) right after the previous task,
    stored as fact ``fact``; read it with :func:`probe_result`."""
    cmd = " ".join([sys.executable, HERE, aws.endpoint, kind] + ["'%s'" % n for n in names])
    return {"name": "probe moto", "ansible.builtin.set_fact": {fact: "{{ lookup('ansible.builtin.pipe', %r) }}" % cmd}}


def probe_result(result, fact="probe"):
    assert "ansible_facts" in result, "probe task failed: %r" % result
    value = result["ansible_facts"][fact]
    data = value if isinstance(value, dict) else json.loads(value)
    return {k: [tuple(x) for x in v] if v and isinstance(v[0], list) else v for k, v in data.items()}


def _main(argv):
    endpoint, kind, names = argv[0], argv[1], argv[2:]
    client = boto3.client("elbv2" if kind == "targets" else "elb", endpoint_url=endpoint, region_name=REGION, **KEYS)
    if kind == "targets":
        out = {n: read_targets(client, n) for n in names}
    else:
        out = {n: read_elb_instances(client, n) for n in names}
    print(json.dumps(out))


if __name__ == "__main__":
    _main(sys.argv[1:])
