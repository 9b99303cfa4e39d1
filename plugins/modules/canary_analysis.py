#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: canary_analysis
short_description: Compare canary servers with the rest of their HAProxy backend over a time window
version_added: 0.1.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - Reads the counters of every server of O(backend) on every HAProxy instance listed in O(sockets), waits
    O(window) seconds, reads them again and compares the canary servers (O(canary)) with the baseline, that is
    every other server of the backend that was in rotation (admin state C(ready) and status C(UP) or C(no check))
    when the window started.
  - Counts are summed over all sockets (load balancers). A socket that does not know a server contributes nothing
    for it; a canary server unknown to every socket is an error.
  - "RV(metrics): C(requests) (sum of the responses of every class, 1xx to 5xx and other), C(error_rate)
    (5xx responses / requests), C(error_rate_ratio) (canary error rate / baseline error rate) and
    C(latency_increase) (relative increase of HAProxy's response time C(rtime))."
  - The verdict is V(pass) when every checked metric is within its threshold, V(fail) when one is not, and
    V(inconclusive) when the canary served fewer than O(min_requests) requests (see O(on_inconclusive)).
  - An error metric above its threshold fails only when the excess is statistically significant at
    O(confidence), so that a few 5xx in a small window do not fail a good release, while a release that is really
    worse fails as soon as the window holds enough requests to show it. C(error_rate) uses a one-sided exact
    binomial test against O(max_error_rate); C(error_rate_ratio) the conditional binomial test for two Poisson
    rates, against a canary rate of exactly O(max_error_rate_ratio) times the baseline's. Each returns its
    C(p_value) in RV(metrics).
  - RV(error_budget) reports the canary's error budget for the window, O(max_error_rate) times the canary's
    requests, with the 5xx responses observed and the share of the budget they used; the message states it too.
  - With O(counters), the counters are not read here but given, as read by
    M(zerodowntime.rollout.haproxy_server_info) on each load balancer host at the start and at the end of the
    window; this sums load balancers whose sockets are only reachable from different hosts.
  - Optionally compares Prometheus instant queries, evaluated per server at the end of the window.
  - The backend must be in HTTP mode (TCP mode has no response counters).
  - Only reads; changes nothing. HAProxy user- and operator-level sockets are enough.
options:
  sockets:
    description:
      - HAProxy Runtime API sockets, one per HAProxy instance.
      - An absolute unix socket path, or V(tcp://HOST:PORT) (V(tcp://[::1]:PORT) for IPv6).
      - List each instance once; two sockets of the same HAProxy would count its traffic twice.
      - Not used with O(counters).
  backend:
    description:
      - The HAProxy backend holding the canary and baseline servers.
    required: true
  canary:
    description:
      - Names of the canary servers in O(backend). Every other server in rotation is the baseline, except those in
        O(exclude).
      - The task fails before waiting if a name is unknown on every socket, if no canary server is in rotation,
        or if no other server is in rotation.
    type: list
    elements: str
    required: true
  exclude:
    description:
      - Servers of O(backend) that are neither canary nor baseline, such as surge hosts that already run the new
        release (the C(zerodowntime.rollout.rolling_update) playbook passes its C(rollout_surge_hosts)).
    type: list
    elements: str
    default: []
notes:
  - HAProxy's counters are cumulative; a counter that goes backwards during the window (HAProxy reloaded) counts
    from zero, so its end value is taken as the increase.
  - A metric that cannot be computed (no request at all in a group) has C(passed) null in RV(metrics) and does
    not fail the verdict.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.haproxy
  - zerodowntime.rollout.canary_window
  - zerodowntime.rollout.canary_verdict
  - zerodowntime.rollout.canary_prometheus
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs normally in check mode, including the wait.
  diff_mode:
    support: none
seealso:
  - module: zerodowntime.rollout.haproxy_server_info
  - module: zerodowntime.rollout.haproxy_server
"""

EXAMPLES = r"""
- name: Compare web1 with the rest of be_app for two minutes on both load balancers
  zerodowntime.rollout.canary_analysis:
    backend: be_app
    canary: [web1]
    sockets:
      - tcp://10.0.0.10:9999
      - tcp://10.0.0.11:9999
    window: 120
    max_error_rate: 0.005
    max_latency_increase: 0.3

- name: Let the playbook decide what to do with the verdict
  zerodowntime.rollout.canary_analysis:
    backend: be_app
    canary: [web1, web2]
    window: 60
    min_requests: 200
    on_inconclusive: extend
    max_window: 300
    fail_on_verdict: false
  register: __canary

- name: Roll back when the canary is worse than the baseline
  ansible.builtin.include_tasks: rollback.yml
  when: __canary.verdict == 'fail'

- name: Read the counters on every load balancer host (start of the window)
  zerodowntime.rollout.haproxy_server_info:
    backend: be_app
  delegate_to: "{{ item }}"
  loop: [lb1, lb2]
  register: __start

- name: Let the canary serve for two minutes
  ansible.builtin.wait_for:
    timeout: 120

- name: Read them again
  zerodowntime.rollout.haproxy_server_info:
    backend: be_app
  delegate_to: "{{ item }}"
  loop: [lb1, lb2]
  register: __end

- name: Compare web1 with the rest of be_app, summed over both load balancer hosts
  zerodowntime.rollout.canary_analysis:
    backend: be_app
    canary: [web1]
    window: 120
    counters:
      start: "{{ __start.results }}"
      end: "{{ __end.results }}"
  delegate_to: localhost

- name: Also compare application metrics from Prometheus
  zerodowntime.rollout.canary_analysis:
    backend: be_app
    canary: [web1]
    prometheus_url: http://prometheus.example.com:9090
    prometheus_queries:
      exceptions: sum(rate(app_exceptions_total{instance="{server}"}[2m]))
      p99_seconds: histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket{instance="{server}"}[2m])))
    prometheus_max_ratio: 1.5
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive).
  returned: always
  type: str
  sample: pass
msg:
  description: The verdict in a sentence; on V(fail), every failed metric with canary value, baseline value and
    threshold.
  returned: always
  type: str
  sample: "Canary analysis failed for app1 (backend app, 4.0s window, 100 canary / 200 baseline requests,
    canary share 33.3%): error_rate: canary 0.05, baseline 0, threshold 0.01, p=0.0034; error_rate_ratio:
    canary 0.05, baseline 0, ratio inf, threshold 2, p=0.031; error budget: 5 5xx of 1 allowed (max_error_rate
    0.01 x 100 canary requests), 500% used."
metrics:
  description:
    - Metric name to its comparison. Names are C(requests), C(error_rate), C(error_rate_ratio),
      C(latency_increase), and C(prometheus_<name>) for each of O(prometheus_queries).
    - C(requests) is not a failure criterion; when it does not pass, the verdict follows O(on_inconclusive).
  returned: always
  type: dict
  contains:
    canary:
      description: The canary's value (requests, error rate, response time in ms, or Prometheus value).
      type: float
    baseline:
      description: The baseline's value, in the same unit.
      type: float
    value:
      description: What is compared with the threshold (the canary's value, a ratio or an increase); C(inf) when the
        baseline is 0 and the canary is not.
      type: float
    threshold:
      description: The threshold from the options.
      type: float
    p_value:
      description:
        - For C(error_rate) and C(error_rate_ratio) only, the chance of an excess at least this large if the
          canary sat exactly at the threshold; null when it cannot be computed (no request).
        - An excess fails when this is below 1 - O(confidence).
      type: float
    passed:
      description:
        - Whether the value is within the threshold, or above it by an amount that is not significant (error
          metrics, see O(confidence)); null when it cannot be computed (no request).
      type: bool
    queries:
      description: For C(prometheus_*) metrics only, the query run for each server.
      type: dict
  sample:
    error_rate: {canary: 0.0, baseline: 0.0, value: 0.0, threshold: 0.01, p_value: 1.0, passed: true}
    latency_increase: {canary: 2.0, baseline: 1.5, value: 0.05, threshold: 0.5, passed: true}
error_budget:
  description: The canary's error budget for the window.
  returned: always
  type: dict
  contains:
    max_error_rate:
      description: O(max_error_rate).
      type: float
    requests:
      description: Requests the canary served in the window.
      type: int
    allowed:
      description: 5xx responses the budget allowed, O(max_error_rate) times RV(error_budget.requests).
      type: float
    errors:
      description: 5xx responses the canary served in the window.
      type: int
    remaining:
      description: RV(error_budget.allowed) minus RV(error_budget.errors); negative when the budget is exceeded.
      type: float
    consumed:
      description: RV(error_budget.errors) / RV(error_budget.allowed) (V(1.0) is the whole budget); C(inf) when
        nothing was allowed and there were errors.
      type: float
  sample: {max_error_rate: 0.01, requests: 100, allowed: 1.0, errors: 5, remaining: -4.0, consumed: 5.0}
groups:
  description: What each group served during the window, summed over servers and sockets.
  returned: always
  type: dict
  contains:
    canary:
      description: Canary totals.
      type: dict
      contains:
        requests:
          description: Responses of every class.
          type: int
        responses:
          description: Responses by class (C(1xx) to C(5xx), C(other)).
          type: dict
        errors:
          description: 5xx responses.
          type: int
        sessions:
          description: Sessions (connections) opened.
          type: int
        error_rate:
          description: errors / requests; null without requests.
          type: float
        latency_ms:
          description: Weighted response time; null without requests.
          type: float
    baseline:
      description: Baseline totals, same keys as RV(groups.canary).
      type: dict
window:
  description: Seconds actually analysed, from the first to the last reading.
  returned: always
  type: float
  sample: 60.002
settled:
  description:
    - False when more traffic could change the verdict; the canary served fewer than O(min_requests) requests, or
      an error metric is above its threshold by an amount that is not significant.
    - With O(on_inconclusive=extend) the module extends the window while this is false; with O(counters), the
      caller may read the counters again later and call the module anew.
  returned: always
  type: bool
  sample: true
canary_share:
  description:
    - The canary's share of the requests served in the window, canary requests / (canary + baseline requests), from 0
      to 1; null when no request was served. The message gives it in percent (C(canary share 9.8%)).
    - With a weighted canary (the rolling_update role's C(rolling_update_canary_weight)) it is close to the weight set;
      the significance tests work on the request counts, so a smaller share only means that more window is needed
      to reach O(min_requests) and significance.
  returned: always
  type: float
  sample: 0.098
extensions:
  description: How many times the window was extended (O(on_inconclusive=extend)).
  returned: always
  type: int
  sample: 0
canary:
  description: The canary server names.
  returned: always
  type: list
  elements: str
  sample: [web1]
baseline:
  description: The baseline server names (every other server in rotation on some socket at the start).
  returned: always
  type: list
  elements: str
  sample: [web2, web3]
backend:
  description: The backend analysed.
  returned: always
  type: str
  sample: be_app
sockets:
  description: The sockets read, in order; with O(counters), prefixed by the load balancer host.
  returned: always
  type: list
  elements: str
  sample: [/run/haproxy/admin.sock]
samples:
  description: Running totals since the start, one per O(interval).
  returned: when O(interval) is set
  type: list
  elements: dict
  sample: [{elapsed: 5.0, canary_requests: 80, canary_errors: 0, baseline_requests: 161, baseline_errors: 1}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.analysis import analyse_canary  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.options import (  # noqa: E402
    DEFAULTS,
    ON_INCONCLUSIVE_CHOICES,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.prometheus import prometheus_fetch  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary.reading import make_reader  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy.transport import DEFAULT_SOCKET  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402

# Options that say where the counters and Prometheus' answers come from; analyse_canary takes the others as they are.
SOURCE_OPTIONS = ("sockets", "prometheus_validate_certs", "prometheus_timeout")


def argument_spec():
    return {
        "sockets": {"type": "list", "elements": "str", "default": [DEFAULT_SOCKET]},
        "backend": {"type": "str", "required": True},
        "canary": {"type": "list", "elements": "str", "required": True},
        "exclude": {"type": "list", "elements": "str", "default": []},
        "window": {"type": "float", "default": DEFAULTS["window"]},
        "max_window": {"type": "float"},
        "interval": {"type": "float"},
        "max_error_rate": {"type": "float", "default": DEFAULTS["max_error_rate"]},
        "max_error_rate_ratio": {"type": "float", "default": DEFAULTS["max_error_rate_ratio"]},
        "max_latency_increase": {"type": "float", "default": DEFAULTS["max_latency_increase"]},
        "latency_floor_ms": {"type": "float", "default": DEFAULTS["latency_floor_ms"]},
        "min_requests": {"type": "int", "default": DEFAULTS["min_requests"]},
        "on_inconclusive": {
            "type": "str",
            "choices": list(ON_INCONCLUSIVE_CHOICES),
            "default": DEFAULTS["on_inconclusive"],
        },
        "fail_on_verdict": {"type": "bool", "default": True},
        "prometheus_url": {"type": "str"},
        "prometheus_queries": {"type": "dict"},
        "prometheus_max_ratio": {"type": "float", "default": DEFAULTS["prometheus_max_ratio"]},
        "prometheus_validate_certs": {"type": "bool", "default": True},
        "prometheus_timeout": {"type": "float", "default": 10},
        "confidence": {"type": "float", "default": DEFAULTS["confidence"]},
        "counters": {
            "type": "dict",
            "options": {
                "start": {"type": "list", "elements": "dict", "required": True},
                "end": {"type": "list", "elements": "dict", "required": True},
            },
        },
    }


def analyse(params):
    """The analysis the options ask for, on the counters read from the sockets or on those given."""
    return analyse_canary(
        read=None if params["counters"] else make_reader(params["sockets"], params["backend"]),
        fetch=prometheus_fetch(params["prometheus_timeout"], params["prometheus_validate_certs"]),
        **{name: value for name, value in params.items() if name not in SOURCE_OPTIONS},
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_by={"prometheus_queries": ["prometheus_url"]},
        mutually_exclusive=[["counters", "interval"], ["counters", "max_window"]],
    )
    # The invocation Ansible may add to the result shows params as they are at exit: no credentials there.
    run_module(module, analyse, secret_params=["prometheus_url"])


if __name__ == "__main__":
    main()
