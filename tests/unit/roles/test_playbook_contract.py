# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract between the playbooks and the role: each keeps to its own variables.

The playbooks pass the role its public inputs (rolling_update_*) and read only what the role documents as its
outputs; the role never reads the playbooks' own variables (rollout_*, _rollout_*)."""

import os
import re

import yaml

from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.playbook_yaml import templates

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOKS = os.path.join(ROOT, "playbooks")
ROLE = os.path.join(ROOT, "roles", "rolling_update")

ROLE_PRIVATE = re.compile(r"(?<![A-Za-z0-9_])_{1,2}rolling_update_[a-z0-9_]+")
PLAYBOOK_PRIVATE = re.compile(r"(?<![A-Za-z0-9_])_+rollout_[a-z0-9_]+")


JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def yaml_files(top):
    for base, _dirs, files in os.walk(top):
        for name in sorted(files):
            if name.endswith((".yml", ".yaml")):
                yield os.path.join(base, name)


def expressions(node):
    """The Jinja expressions of a parsed YAML document: inside {{ }} and {% %}, and the whole of a conditional."""
    for source, bare in templates(node):
        yield from [source] if bare else ["".join(m) for m in JINJA.findall(source)]


def names(pattern, expression):
    """Names ``pattern`` finds in an expression: anywhere for a private name (hostvars[h]['_x'] reads one), outside
    string literals for a public one (a message may name a variable)."""
    private = [n for n in pattern.findall(expression) if n.startswith("_")]
    return private + [n for n in pattern.findall(QUOTED.sub("''", expression)) if not n.startswith("_")]


def found(pattern, top, allowed=()):
    hits = []
    for path in yaml_files(top):
        with open(path) as f:
            doc = yaml.safe_load(f)
        for expression in expressions(doc):
            for name in names(pattern, expression):
                if name not in allowed:
                    hits.append("%s %s" % (os.path.relpath(path, ROOT), name))
    return hits


def test_the_playbooks_read_no_private_variable_of_the_role():
    assert found(ROLE_PRIVATE, PLAYBOOKS) == []


def test_the_role_reads_no_private_variable_of_the_playbooks():
    # The public ones (rollout_*) are test_playbook_spec.py's: the role's tasks, vars and defaults read none.
    for part in ("tasks", "vars", "defaults"):
        assert found(PLAYBOOK_PRIVATE, os.path.join(ROLE, part)) == []


def test_the_scan_sees_names_in_expressions_but_not_in_prose_or_string_literals():
    doc = {
        "msg": "Set rollout_surge_hosts. {{ hostvars[h]['_rolling_update_plan_host'] }} {{ _rollout_x ~ 'rollout_y' }}",
        "when": ["__rolling_update_lb | length > 0", "rolling_update_path != 'rollout_z'"],
    }
    text = " ".join(expressions(doc))
    assert names(ROLE_PRIVATE, text) == ["_rolling_update_plan_host", "__rolling_update_lb"]
    assert names(PLAYBOOK_PRIVATE, text) == ["_rollout_x"]


# Role inputs a playbook sets itself, in play or task vars (which win over the inventory): only those the role
# documents as set by the playbook, or a fixed value for the hosts a play is about.
SET_BY_THE_PLAYBOOKS = {
    "rolling_update_surge_servers": "documented as set by the rolling_update playbook",
    "rolling_update_surge_restore": "documented as set by the rolling_update playbook",
    "rolling_update_admin_down": "plan playbook, surge hosts only: they wait in MAINT by design",
}


def set_vars(node):
    """Every name set in a ``vars:`` mapping of a parsed playbook (plays, blocks, tasks)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "vars" and isinstance(value, dict):
                yield from value
            yield from set_vars(value)
    elif isinstance(node, list):
        for value in node:
            yield from set_vars(value)


def test_the_playbooks_set_only_role_inputs_they_own():
    """A role input set in a play's vars would silently override the operator's inventory value."""
    wrong = []
    for path in yaml_files(PLAYBOOKS):
        with open(path) as f:
            doc = yaml.safe_load(f)
        for name in set_vars(doc):
            if name.startswith("rolling_update_") and name not in SET_BY_THE_PLAYBOOKS:
                wrong.append("%s %s" % (os.path.relpath(path, ROOT), name))
    assert wrong == []
