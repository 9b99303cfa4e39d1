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
    type: list
    elements: str
    default: [/run/haproxy/admin.sock]
  backend:
    description:
      - The HAProxy backend holding the canary and baseline servers.
    type: str
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
  window:
    description:
      - Seconds between the first and the last reading.
      - With O(counters), the time between the two readings given, as reported in the result and the message.
    type: float
    default: 60
  max_window:
    description:
      - Longest window when O(on_inconclusive=extend). Defaults to 3 times O(window).
    type: float
  interval:
    description:
      - When set, the counters are also read every O(interval) seconds during the window and the running totals
        are returned in RV(samples). When omitted, the module sleeps through the window.
    type: float
  max_error_rate:
    description:
      - Highest canary error rate (5xx responses / requests) that passes, from 0 to 1.
    type: float
    default: 0.01
  max_error_rate_ratio:
    description:
      - Highest canary error rate / baseline error rate that passes.
      - With a baseline error rate of 0 the ratio is C(inf) when the canary had any 5xx response, and C(1.0) when
        it had none. With a clean baseline, canary 5xx responses fail this check once they are significant (see
        O(confidence)); with the canary serving a third of the traffic, for example, 5 canary 5xx against none
        in the baseline are.
    type: float
    default: 2.0
  max_latency_increase:
    description:
      - Highest relative increase of the canary response time over the baseline's that passes (V(0.5) is +50%).
      - "The increase is (canary - baseline) / max(baseline, O(latency_floor_ms))."
      - The response time is HAProxy's C(rtime) at the end of the window, an average over each server's last 1024
        requests, weighted by the requests each server served during the window.
    type: float
    default: 0.5
  latency_floor_ms:
    description:
      - The baseline response time counts as at least this many milliseconds when computing the increase, so that
        a baseline of 0 or 1 ms (HAProxy counts whole milliseconds) does not turn a 2 ms canary into +100%.
    type: float
    default: 10
  min_requests:
    description:
      - Fewest requests the canary must serve in the window (summed over its servers and all sockets) for the
        analysis to be conclusive.
    type: int
    default: 50
  confidence:
    description:
      - Confidence level of the significance tests of C(error_rate) and C(error_rate_ratio), at least 0 and less
        than 1. A metric above its threshold fails only when its C(p_value) is below 1 - O(confidence).
      - V(0) turns the tests off, so that any excess over a threshold fails.
    type: float
    default: 0.95
  counters:
    description:
      - Counters read beforehand, instead of reading O(sockets) and waiting. C(start) and C(end) are each a list
        with one M(zerodowntime.rollout.haproxy_server_info) result per load balancer host (registered in a loop
        over the hosts, in the same order); the analysis compares O(backend) between the two.
      - A result's loop C(item) (the host name) labels its sockets, so the same socket path on two hosts counts as
        two load balancers.
      - Nothing is read and the module does not wait; O(on_inconclusive=extend) returns V(inconclusive) for the
        caller to read again later (the rolling_update role does that).
      - Cannot be used with O(interval) or O(max_window). Prometheus queries are evaluated when the module runs.
    type: dict
    suboptions:
      start:
        description: The results of the reading at the start of the window.
        type: list
        elements: dict
        required: true
      end:
        description: The results of the reading at the end of the window.
        type: list
        elements: dict
        required: true
  on_inconclusive:
    description:
      - What to do when the canary served fewer than O(min_requests) requests.
      - "V(extend) extends the window by O(window) at a time, up to O(max_window), then re-evaluates from the first
        reading; if it is still short, the verdict is V(inconclusive) and the task does not fail.
        The message then says C(inconclusive (not enough requests: N < min_requests M))."
      - V(extend) also extends the window while an error metric is above its threshold by an amount that is not
        significant yet (see O(confidence)), since more traffic can settle it either way; if it is still not
        significant at O(max_window), that metric passes.
      - V(fail) makes the verdict V(fail); V(pass) makes it V(pass). Thresholds are not evaluated on too few
        requests in either case.
    type: str
    choices: [extend, fail, pass]
    default: extend
  fail_on_verdict:
    description:
      - Fail the task when the verdict is V(fail), with a message that lists every failed metric with its canary
        value, baseline value and threshold.
      - When V(false), the task returns the verdict and the caller decides.
      - A V(inconclusive) verdict never fails the task.
    type: bool
    default: true
  prometheus_url:
    description:
      - Base URL of a Prometheus server (its C(/api/v1/query) endpoint is used). Needed with O(prometheus_queries).
      - "User info (V(https://user:password@prometheus:9090)) is sent as HTTP basic authentication, to that host
        only. Percent-encode any C(/), C(?), C(#), C(@) or C(:) in the user name or password; a URL whose host and
        port cannot be read is refused before any query."
      - Messages and results never show the user info or the query string of this URL (they read C(***)), nor
        secret-looking values quoted in Prometheus' answers.
    type: str
  prometheus_queries:
    description:
      - Metric name to PromQL template. The literal C({server}) is replaced by a server name (other braces, such as
        label matchers, are left alone); the query is run as an instant query at the end of the window, once per
        canary and once per baseline server.
      - A group's value is the mean over its servers of each query's result (the sum of the returned samples; an
        empty result counts as 0, NaN samples are ignored).
      - Higher must mean worse (error rates, latencies). The metric passes when canary / baseline is at most
        O(prometheus_max_ratio), with the same rule for a zero baseline as O(max_error_rate_ratio).
      - Results are returned as RV(metrics) named C(prometheus_<name>).
    type: dict
  prometheus_max_ratio:
    description:
      - Highest canary / baseline ratio that passes for each of O(prometheus_queries).
    type: float
    default: 2.0
  prometheus_validate_certs:
    description:
      - Validate the TLS certificate of O(prometheus_url).
    type: bool
    default: true
  prometheus_timeout:
    description:
      - Seconds to wait for each Prometheus answer.
    type: float
    default: 10
notes:
  - HAProxy's counters are cumulative; a counter that goes backwards during the window (HAProxy reloaded) counts
    from zero, so its end value is taken as the increase.
  - A metric that cannot be computed (no request at all in a group) has C(passed) null in RV(metrics) and does
    not fail the verdict.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs normally in check mode, including the wait.
  diff_mode:
    support: none
  platform:
    platforms: posix
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

from ansible_collections.zerodowntime.rollout.plugins.module_utils._canary import (  # noqa: E402
    DEFAULTS,
    ON_INCONCLUSIVE_CHOICES,
    analyse_canary,
    make_reader,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._haproxy_runtime import (  # noqa: E402
    DEFAULT_SOCKET,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import request  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import (  # noqa: E402
    redact_params,
    redact_text,
)

MAX_BODY = 4 * 1024 * 1024


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


def make_fetch(params):
    """``fetch(url) -> (status, body)`` for the Prometheus queries."""

    def fetch(url):
        return request(
            url,
            params["prometheus_timeout"],
            validate_certs=params["prometheus_validate_certs"],
            agent="zerodowntime.rollout-canary_analysis",
            max_body=MAX_BODY,
        )

    return fetch


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_by={"prometheus_queries": ["prometheus_url"]},
        mutually_exclusive=[["counters", "interval"], ["counters", "max_window"]],
    )
    params = module.params
    prometheus_url = params["prometheus_url"]
    # The invocation Ansible may add to the result shows params as they are at exit: no credentials there.
    redact_params(params, ["prometheus_url"])
    try:
        counters = params["counters"]
        result = analyse_canary(
            backend=params["backend"],
            canary=params["canary"],
            exclude=params["exclude"],
            read=None if counters else make_reader(params["sockets"], params["backend"]),
            counters=counters,
            confidence=params["confidence"],
            window=params["window"],
            max_window=params["max_window"],
            interval=params["interval"],
            max_error_rate=params["max_error_rate"],
            max_error_rate_ratio=params["max_error_rate_ratio"],
            max_latency_increase=params["max_latency_increase"],
            latency_floor_ms=params["latency_floor_ms"],
            min_requests=params["min_requests"],
            on_inconclusive=params["on_inconclusive"],
            fail_on_verdict=params["fail_on_verdict"],
            prometheus_url=prometheus_url,
            prometheus_queries=params["prometheus_queries"],
            prometheus_max_ratio=params["prometheus_max_ratio"],
            fetch=make_fetch(params),
        )
    except RolloutError as exc:
        module.fail_json(msg=redact_text(exc.msg), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
