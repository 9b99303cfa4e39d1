# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The canary's verdict: thresholds, significance, and what an inconclusive or failed analysis does.
    DOCUMENTATION = r"""
options:
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
"""
