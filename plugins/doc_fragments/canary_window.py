# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The canary's window: how long, how it is extended and sampled, or the counters read elsewhere instead.
    DOCUMENTATION = r"""
options:
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
"""
