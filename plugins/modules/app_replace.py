#!/usr/bin/python
# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: app_replace
short_description: Replace the app on a host in one call (stop, switch current, start, wait until ready), or restore it
version_added: 0.2.0
author: zerodowntime.rollout contributors (@zerodowntime)
description:
  - The host half of a zero-downtime transaction, run while the host is out of rotation. The
    C(zerodowntime.rollout.rolling_update) role calls it once per host (twice when a hook runs between the switch
    and the start).
  - With O(state=replaced) it stops the app (a systemd unit, or the operator's stop command, then waits until the
    app's port is closed), switches C(current) to O(version) atomically, starts the app and waits until the
    readiness probe passes O(consecutive_successes) times in a row. Each step is timed (RV(steps)).
  - The release must already be unpacked and complete (M(zerodowntime.rollout.release) O(state=present), which
    the role runs while the host still serves). Otherwise nothing is stopped and the call fails.
  - With O(state=restored) it makes the host run O(version) again (the release it ran before the rollout; default
    the previous one). Nothing is done when it already runs it and answers the probe once; otherwise it stops the
    app (best effort), switches back (recorded as a rollback of the release it leaves, see
    M(zerodowntime.rollout.release_info)), starts and probes it. It does not fail when the app stays unready;
    RV(ready) says so.
  - O(start_command) and O(stop_command) are command lines run by C(/bin/sh -c), as capistrano and ansistrano hooks
    are; C(systemctl) runs without a shell. Every command has a deadline (O(stop_timeout), O(start_timeout)). A start
    command must detach the app from its output (as a systemd unit does), or the call waits for it until
    O(start_timeout).
options:
  version:
    description:
      - With O(state=replaced), the release to switch to (required).
      - With O(state=restored), the release to return to; default the previous release.
    type: str
  state:
    description: V(replaced) rolls forward, V(restored) rolls back.
    type: str
    default: replaced
    choices: [replaced, restored]
  steps:
    description:
      - With O(state=replaced), which steps to run, in order. A hook between the switch and the start splits the
        call into V([stop, deploy]) and V([start, ready]).
    type: list
    elements: str
    default: [stop, deploy, start, ready]
    choices: [stop, deploy, start, ready]
  keep:
    description: Releases to keep after the switch (older ones are pruned); V(0) never prunes.
    type: int
    default: 5
  service_manager:
    description: V(systemd) stops and starts O(service_name) with systemctl; V(command) runs the given commands.
    type: str
    default: command
    choices: [systemd, command]
  service_name:
    description: The systemd unit (for O(service_manager=systemd)).
    type: str
  start_command:
    description:
      - The command line that starts the app (for O(service_manager=command)), run by C(/bin/sh -c) as the user the
        module runs as, in the module's working directory. Shell syntax works as in a hook of capistrano or
        ansistrano, for example C(PORT=8080 ./bin/ctl start) or C(cd /srv/shop/current && ./bin/start).
      - It must return once the app is started, with the app's output redirected away from the command's (as a
        control script does, or C(./bin/server >>log/app.log 2>&1 &)); otherwise the call waits for the app and ends
        it after O(start_timeout) seconds.
      - A non-zero exit fails the call; the message shows the line (secret-looking values such as C(PASSWORD=...)
        hidden) and the end of its output.
    type: str
  stop_command:
    description:
      - The command line that stops the app gracefully (for O(service_manager=command)), run by C(/bin/sh -c) as
        O(start_command) is; it is ended after O(stop_timeout) seconds, and the app's port (O(app_port)) must then be
        closed within that time.
      - M(zerodowntime.rollout.app_prepare) checks both lines before anything changes, while the host still serves.
    type: str
  stop_timeout:
    description: Seconds the stop, and the port closing after it, may take.
    type: float
    default: 60
  stop_delay:
    description:
      - Seconds to wait before the stop, once the host is out of rotation, for load balancers that keep sending to a
        drained host briefly. The wait is counted in the C(stop) step. Also before the stop of O(state=restored).
    type: float
    default: 0
  start_timeout:
    description: Seconds the start command may take.
    type: float
    default: 120
  app_host:
    description: Address of the app's port, checked closed after the stop.
    type: str
    default: 127.0.0.1
  app_port:
    description: The app's port; V(0) skips the check that it closed.
    type: int
    default: 0
  consecutive_successes:
    description: Passing probes needed in a row before the app counts as ready.
    type: int
    default: 3
  health_timeout:
    description: Seconds to wait for readiness after the start.
    type: float
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - zerodowntime.rollout.app_host
  - zerodowntime.rollout.app_host.layout
  - zerodowntime.rollout.readiness
attributes:
  check_mode:
    support: full
    details:
      - Reads the layout and reports the steps it would run; stops, switches and starts nothing.
seealso:
  - module: zerodowntime.rollout.release
  - module: zerodowntime.rollout.rotation
  - module: zerodowntime.rollout.http_health
"""

EXAMPLES = r"""
- name: Replace the app (the host is out of rotation)
  zerodowntime.rollout.app_replace:
    path: /srv/shop
    version: "2.4.1"
    service_manager: systemd
    service_name: shop.service
    app_port: 8080
    health_url: http://127.0.0.1:8080/ready

- name: Put back the release it ran before
  zerodowntime.rollout.app_replace:
    path: /srv/shop
    version: "2.4.0"
    state: restored
    service_manager: systemd
    service_name: shop.service
    health_url: http://127.0.0.1:8080/ready
  register: restored
"""

RETURN = r"""
msg:
  description: What was done, with the time of each step.
  returned: always
  type: str
  sample: "Release v2 on /srv/shop: stop 1.4s, deploy 0.0s, start 0.1s, ready 1.2s."
steps:
  description: The steps run, in order, with their seconds; on failure, up to the failed one.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "stop", "seconds": 1.402}, {"name": "deploy", "seconds": 0.004}]
current:
  description: The release C(current) points to afterwards.
  returned: always
  type: str
  sample: v2
switched:
  description: True when this call moved C(current).
  returned: always
  type: bool
ready:
  description: True when the readiness probe passed; null when it was not run (check mode, or no ready step).
  returned: always
  type: bool
failed_step:
  description: The step that failed.
  returned: failure
  type: str
  sample: ready
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.zerodowntime.rollout.plugins.module_utils._http import (  # noqa: E402
    READINESS_SPEC,
    readiness_probe,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._module_main import run_module  # noqa: E402
from ansible_collections.zerodowntime.rollout.plugins.module_utils._replace import (  # noqa: E402
    STEP_NAMES,
    StopAfterDelay,
    replace_app,
    restore_app,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._service import (  # noqa: E402
    Service,
    deadline_runner,
)


def argument_spec():
    spec = {
        "path": {"type": "path", "required": True},
        "version": {"type": "str"},
        "state": {"type": "str", "default": "replaced", "choices": ["replaced", "restored"]},
        "steps": {"type": "list", "elements": "str", "default": list(STEP_NAMES), "choices": list(STEP_NAMES)},
        "keep": {"type": "int", "default": 5},
        "service_manager": {"type": "str", "default": "command", "choices": ["systemd", "command"]},
        "service_name": {"type": "str"},
        "start_command": {"type": "str"},
        "stop_command": {"type": "str"},
        "stop_timeout": {"type": "float", "default": 60},
        "stop_delay": {"type": "float", "default": 0},
        "start_timeout": {"type": "float", "default": 120},
        "app_host": {"type": "str", "default": "127.0.0.1"},
        "app_port": {"type": "int", "default": 0},
        "consecutive_successes": {"type": "int", "default": 3},
        "health_timeout": {"type": "float", "default": 120},
    }
    spec.update(READINESS_SPEC)
    return spec


def run(params, check_mode, runner):
    service = Service(
        params["service_manager"],
        name=params["service_name"],
        start_command=params["start_command"],
        stop_command=params["stop_command"],
        stop_timeout=params["stop_timeout"],
        start_timeout=params["start_timeout"],
        app_host=params["app_host"],
        app_port=params["app_port"],
        run=runner,
    )
    if params["stop_delay"]:
        service = StopAfterDelay(service, params["stop_delay"])
    probe = readiness_probe(params, params["consecutive_successes"], params["health_timeout"])
    if params["state"] == "restored":
        quick = readiness_probe(params, 1, 0)
        return restore_app(params["path"], params["version"], service, probe, quick_probe=quick, check_mode=check_mode)
    return replace_app(
        params["path"],
        params["version"],
        service,
        probe,
        keep=params["keep"],
        steps=params["steps"],
        check_mode=check_mode,
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("state", "replaced", ["version"]),
            ("service_manager", "systemd", ["service_name"]),
            ("service_manager", "command", ["start_command", "stop_command"]),
        ],
    )
    runner = deadline_runner(module.run_command, module.get_bin_path("timeout"))
    run_module(
        module,
        lambda params: run(params, module.check_mode, runner),
        secret_params=["health_url", "start_command", "stop_command"],
    )


if __name__ == "__main__":
    main()
