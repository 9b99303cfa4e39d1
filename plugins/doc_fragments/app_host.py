# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # What the modules that work on a host's app or release layout have in common (app_info, app_prepare,
    # app_replace, release_info, rollout_lock): they run on POSIX hosts and have no diff mode.
    # Used next to ansible.builtin.action_common_attributes, which describes these attributes.
    DOCUMENTATION = r"""
options: {}
attributes:
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

    # zerodowntime.rollout.app_host.read_only: a module that only reads (app_info, release_info).
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs normally in check mode.
"""

    # zerodowntime.rollout.app_host.layout: the release layout a module works on (app_prepare, app_replace).
    LAYOUT = r"""
options:
  path:
    description: Absolute path of the release layout (the directory holding C(releases/) and C(current)).
    type: path
    required: true
"""
