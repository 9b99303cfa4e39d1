# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The options of the rotation module that every provider reads: what to do, the capacity guard, the wait and
    # the resume record.
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - The kind of load balancer. V(haproxy) drives HAProxy's Runtime API on this host (O(sockets), O(backend),
        O(server)). V(elbv2) drives ELBv2 (ALB/NLB) target groups and V(elb_classic) Classic ELBs, through the AWS API
        (O(target_id), the AWS connection options; boto3 is needed on the host that runs the module).
      - The options of the other providers are ignored, so that one C(module_defaults) block can serve every call.
    type: str
    default: haproxy
    choices: [haproxy, elbv2, elb_classic]
  state:
    description:
      - V(out) drains the server and waits, V(in) enables it and waits until UP, V(read) only reads.
      - V(weighted) gives O(batch) O(share) percent of the backend's traffic, V(unweighted) puts the recorded weights
        back (HAProxy only).
    type: str
    required: true
    choices: [out, in, read, weighted, unweighted]
  batch:
    description:
      - Servers of O(backend) taken out together with O(server) (the rollout batch), or with the AWS providers the
        target ids taken out together with O(target_id) (every port of each). The capacity guard counts them all as
        out of rotation. Defaults to O(server) (O(target_id)) alone.
      - With O(state=read) and O(provider=haproxy), read these servers of O(backend) too, from the same read of each
        socket, with their resume records (RV(batch_reads)); one call then reads a whole batch. The AWS providers
        ignore it there.
    type: list
    elements: str
  min_healthy:
    description:
      - With O(state=out), how many servers of the backend must stay in rotation on every socket once the batch is
        out, as a count (V(2)) or a percentage of the backend's servers (V(50%), rounded up). V(0) turns the guard
        off.
      - With the AWS providers, the same for every target group (Classic ELB) read, counting the registrations AWS
        reports C(healthy) (the instances C(InService)) that are not in the batch.
    type: str
    default: "0"
  timeout:
    description:
      - Seconds to wait for the drain (O(state=out)) or for UP (O(state=in)). Defaults to 300 and 120 with HAProxy.
      - With O(provider=elbv2), O(state=out) defaults to the longest deregistration delay of the target groups plus
        60; with O(provider=elb_classic) to 300, raised to the connection-draining timeout plus 60. O(state=in)
        defaults to 300 with both.
    type: float
  poll_interval:
    description:
      - Seconds between two reads of the server's state while waiting. Defaults to 0.25 with HAProxy.
      - With the AWS providers, seconds before the second read; later reads are 1.5 times further apart each, with up
        to 10% jitter, and at most 15 seconds apart. Defaults to 2.
    type: float
  state_dir:
    description:
      - Directory for the resume records, on the host that runs this module. Created with mode 0700. It and its
        C(rotation/) subdirectory must belong to the user running the module and not be writable by others; a
        symlink is refused.
      - With the AWS providers a record is named after the provider, the AWS region and endpoint, and O(target_id).
    type: path
    default: /var/lib/zerodowntime-rollout
  run_id:
    description: Recorded in the resume record, to name the run that took the server out.
    type: str
  version:
    description: Recorded in the resume record, the release being rolled out.
    type: str
"""

    # The options of its HAProxy provider: where the server is, and the weighted canary's share.
    HAPROXY_OPTIONS = r"""
options:
  backend:
    description: HAProxy backend that holds the server. Required with O(provider=haproxy).
    type: str
  server:
    description: Server name inside O(backend). Required with O(provider=haproxy).
    type: str
  sockets:
    description:
      - HAProxy Runtime API sockets on this host, one per HAProxy instance, all changed together.
      - An absolute unix socket path, or V(tcp://HOST:PORT). Each must be an admin-level socket.
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  share:
    description:
      - With O(state=weighted), the percentage of the backend's traffic that the servers of O(batch) (default
        O(server)) take together, more than 0 and less than 100. Required with O(state=weighted).
      - With O(state=in), the same share, given to O(batch) before the server goes back in rotation (a weighted
        canary); without it the weights are left alone.
    type: float
  on_timeout:
    description:
      - With O(state=out), what to do when sessions remain at the deadline. V(fail) leaves them alone and fails,
        V(shutdown_sessions) cuts them and succeeds. HAProxy only (an AWS drain that times out fails).
    type: str
    default: fail
    choices: [fail, shutdown_sessions]
"""

    # The options of its AWS providers (elbv2, elb_classic): the target and its load balancers. amazon.aws's
    # fragments document the connection options.
    AWS_OPTIONS = r"""
options:
  target_id:
    description:
      - With the AWS providers, the target. An EC2 instance id; with O(provider=elbv2) also an IP address (C(ip)
        target groups) or an Application Load Balancer ARN (C(alb) target groups). Required with them.
    type: str
  target_groups:
    description:
      - With O(provider=elbv2), target group names or ARNs. When omitted, every target group in which the target is
        registered (or draining) is found.
      - O(state=in) registers back where the resume record says; only without a record does it register in these
        groups (or, when omitted, waits where the target is registered).
    type: list
    elements: str
  port:
    description:
      - With O(provider=elbv2), the target's port. When omitted, the target is matched on every port it is registered
        on in each group.
    type: int
  load_balancers:
    description:
      - With O(provider=elb_classic), Classic ELB names. When omitted, every Classic ELB that lists the instance is
        found.
      - O(state=in) registers back where the resume record says; only without a record does it register on these.
    type: list
    elements: str
"""
