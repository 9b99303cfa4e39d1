# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The canary's optional comparison of Prometheus queries, canary against baseline.
    DOCUMENTATION = r"""
options:
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
"""
