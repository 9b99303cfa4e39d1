# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The module side of the AWS modules: :func:`run_module` is the ``main()`` of elbv2_target and elb_classic_instance
(with :func:`membership_spec`, the options they share), :func:`end_module` the end of it and of rotation's with an AWS
provider.

Like :func:`.._module_main.run_module`, plus what AWS adds: the client retries throttled calls with a jittered
backoff, a failure reports the AWS calls made, botocore's errors go through ``fail_json_aws`` with what was done
before them, and the result's warnings become module warnings.
"""

try:  # noqa: SIM105 - amazon.aws's idiom, botocore is imported for its exception classes
    import botocore
except ImportError:
    pass  # reported by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.caller import POLL_INTERVAL
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.membership import STATES
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError


def membership_spec(default_timeout=None):
    """The options elbv2_target and elb_classic_instance share, after those naming the member and its load balancers."""
    timeout = {"type": "int"}
    if default_timeout is not None:
        timeout["default"] = default_timeout
    return {
        "state": {"type": "str", "required": True, "choices": list(STATES)},
        "wait": {"type": "bool", "default": True},
        "timeout": timeout,
        "poll_interval": {"type": "float", "default": POLL_INTERVAL},
    }


def run_module(service, manager_class, argument_spec):
    """The ``main()`` of an AWS load balancer module: build its ``AnsibleAWSModule`` on ``argument_spec``, then
    ``manager_class`` (a :class:`.membership.LoadBalancerMembership`) on a ``service`` client, and end the module
    with ``ensure()`` of the module's options, check and diff mode (see :func:`end_module`).
    """
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = {name: module.params[name] for name in argument_spec}
    end_module(
        module,
        service,
        lambda client: manager_class(client, aws_retry=True),
        lambda manager: manager.ensure(check_mode=module.check_mode, diff=module._diff, **options),
    )


def end_module(module, service, build, work):
    """End ``module`` (an ``AnsibleAWSModule``) with ``work(build(client))``.

    :param service: the boto3 service of the client (``elbv2``, ``elb``).
    :param build: ``build(client)`` returns the manager: an object with ``aws`` (its ``AWSCaller``), ``action``
        (what its last AWS call was for) and ``partial_result()`` (what was done before a failure).
    :param work: ``work(manager)`` returns the result dict; its ``warnings`` become module warnings.
    """
    manager = None
    try:
        manager = build(module.client(service, retry_decorator=AWSRetry.jittered_backoff()))
        result = work(manager)
    except RolloutError as exc:
        details = dict(exc.details)
        if manager is not None:
            details.setdefault("api_calls", manager.aws.api_calls)
        module.fail_json(msg=exc.msg, **details)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(
            exc,
            msg="Failed to %s" % (manager.action if manager is not None and manager.action else "reach the AWS API"),
            **(manager.partial_result() if manager is not None else {}),
        )
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
