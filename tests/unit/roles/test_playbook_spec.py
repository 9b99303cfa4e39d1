# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks' variables are documented in the role's ``playbook`` entry point.

``playbooks/rolling_update.yml`` and ``playbooks/plan.yml`` (with ``playbooks/tasks/``) read the
``rollout_*`` variables and ``rolling_update_rollback_scope``; the role's tasks never do. They are
documented in ``roles/rolling_update/meta/argument_specs.yml`` under the entry point ``playbook``, so that
``ansible-doc -t role zerodowntime.rollout.rolling_update -e playbook`` shows them.

The playbooks are parsed, not grepped: every string is a Jinja template (``when:``, ``that:`` and the
other conditionals are bare expressions), and a variable is read where the template's syntax tree loads
that name. So a task name, a message's prose, a YAML anchor (``&rollout_vars``) or a filter called
``rollout_plan`` is no read. The same trees give the playbooks' literal defaults
(``rollout_serial | default(1)``), the conversions they apply (``| bool``, ``| float``) and the choices
they accept (``_rollout_rollback_scope in ['host', 'run']``), which the spec must match.

Pure Python and YAML (and Jinja2's parser): no Ansible run. The check that ansible-doc renders the
entry point is in test_playbook_spec_doc.py.
"""

import glob
import os
import re
import warnings

import pytest
import yaml
from jinja2 import Environment, nodes

from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.playbook_yaml import templates

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPECS = os.path.join(ROOT, "roles", "rolling_update", "meta", "argument_specs.yml")
ENTRY_POINT = "playbook"

# The playbook variables: rollout_*, and the one that carries the role's prefix but is the playbook's.
PLAYBOOK_VAR_RE = re.compile(r"^(rollout_[a-z0-9_]+|rolling_update_rollback_scope)$")
# Playbook keys whose value is a bare Jinja expression (no braces), as ansible-core templates them.
# A conversion filter applied to a variable decides its type in the spec.
CONVERSIONS = {"bool": "bool", "float": "float", "int": "int"}
# A literal default of the playbooks that means the same as the spec's: the host pattern that matches no
# host ('all:!all', for the surge hosts' plays) is what an empty rollout_surge_hosts gives.
SAME_DEFAULT = {("rollout_surge_hosts", "all:!all"): ""}

SPEC_TYPES = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}

_JINJA = Environment()


def playbook_files():
    files = glob.glob(os.path.join(ROOT, "playbooks", "*.yml"))
    files += glob.glob(os.path.join(ROOT, "playbooks", "tasks", "*.yml"))
    return sorted(files)


def load_playbooks():
    docs = {}
    for path in playbook_files():
        with open(path) as f:
            docs[os.path.relpath(path, ROOT)] = yaml.safe_load(f)
    return docs


def load_entry_point(name=ENTRY_POINT):
    with open(SPECS) as f:
        return yaml.safe_load(f)["argument_specs"].get(name)


# --------------------------------------------------------------------------- reading the playbooks


def parse(source, bare):
    with warnings.catch_warnings():
        # The playbooks' regexes ('[.]\\s*$') make Jinja's lexer warn about escapes, as ansible-core's does.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _JINJA.parse("{{ %s }}" % source if bare else source)


def _chain(node):
    """For a filter chain over a name (``x | default(1) | bool``): the name and the filters, innermost
    first; (None, []) for anything else."""
    filters = []
    while isinstance(node, nodes.Filter):
        filters.append(node)
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name, list(reversed(filters))
    return None, []


def _const(node):
    """The Python value of a literal (a constant, or a list of constants), else raise ValueError."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return [_const(item) for item in node.items]
    raise ValueError("not a literal")


class Reads:
    """What the playbooks do with their variables: {name: set of files} for every read, the literal
    defaults ({name: [value]}) and the computed ones ({name}), the conversions ({name: {filter}}) and
    the choices a membership test accepts ({name: [list]})."""

    def __init__(self):
        self.where = {}
        self.defaults = {}
        self.computed_default = set()
        self.conversions = {}
        self.choices = {}
        self.aliases = {}

    def scan(self, documents):
        # Aliases first: a play variable defined as `{{ rolling_update_rollback_scope | default('host') }}`
        # (_rollout_rollback_scope) stands for the variable it reads, wherever it is tested.
        for doc in documents.values():
            self._find_aliases(doc)
        for where, doc in sorted(documents.items()):
            for source, bare in templates(doc):
                self._scan_tree(parse(source, bare), where)
        return self

    def _find_aliases(self, node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "vars" and isinstance(value, dict):
                    for alias, source in value.items():
                        if isinstance(source, str) and isinstance(alias, str):
                            tree = parse(source, False)
                            outputs = [n for n in tree.body if not isinstance(n, nodes.TemplateData)]
                            if len(outputs) == 1 and isinstance(outputs[0], nodes.Output):
                                exprs = [n for n in outputs[0].nodes if not isinstance(n, nodes.TemplateData)]
                                name, chain = _chain(exprs[0]) if len(exprs) == 1 else (None, [])
                                plain = all(f.name == "default" for f in chain)
                                if name and plain and PLAYBOOK_VAR_RE.match(name):
                                    self.aliases[alias] = name
                self._find_aliases(value)
        elif isinstance(node, list):
            for item in node:
                self._find_aliases(item)

    def _scan_tree(self, tree, where):
        # A name the template sets itself ({% set x = ... %}, a loop variable) is not a variable it reads.
        local = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
        for name_node in tree.find_all(nodes.Name):
            if name_node.ctx == "load" and name_node.name not in local and PLAYBOOK_VAR_RE.match(name_node.name):
                self.where.setdefault(name_node.name, set()).add(where)
        filters = list(tree.find_all(nodes.Filter))
        inner = {id(f.node) for f in filters if isinstance(f.node, nodes.Filter)}
        for filt in filters:
            if id(filt) in inner:
                continue  # only the outermost filter of each chain, so every chain counts once
            name, chain = _chain(filt)
            if not name or name in local or not PLAYBOOK_VAR_RE.match(name):
                continue
            for f in chain:
                if f.name == "default":
                    try:
                        value = _const(f.args[0])
                    except (ValueError, IndexError):
                        self.computed_default.add(name)
                    else:
                        self.defaults.setdefault(name, []).append(value)
                elif f.name in CONVERSIONS:
                    self.conversions.setdefault(name, set()).add(CONVERSIONS[f.name])
        for compare in tree.find_all(nodes.Compare):
            name, chain = _chain(compare.expr)
            if any(f.name != "default" for f in chain):
                continue  # `x | string | lower in ['true', ...]` checks a converted value, not the choices
            name = self.aliases.get(name, name)
            if not name or not PLAYBOOK_VAR_RE.match(name) or len(compare.ops) != 1 or compare.ops[0].op != "in":
                continue
            try:
                accepted = _const(compare.ops[0].expr)
            except ValueError:
                continue  # `x in some_variable`: nothing to compare the spec with
            self.choices.setdefault(name, []).append(accepted)


# --------------------------------------------------------------------------- checks (lists of problems)


def same_value(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def undocumented_problems(reads, options):
    return [
        "%s is read by %s but not documented in the %r entry point" % (name, ", ".join(sorted(where)), ENTRY_POINT)
        for name, where in sorted(reads.where.items())
        if name not in options
    ]


def unread_problems(reads, options):
    return [
        "%s is documented in the %r entry point but no playbook reads it" % (name, ENTRY_POINT)
        for name in sorted(options)
        if name not in reads.where
    ]


def default_problems(reads, options):
    """A literal default in the playbooks is the spec's default; a computed one leaves the spec without a
    default (the description says what it is)."""
    problems = []
    for name in sorted(set(reads.defaults) | reads.computed_default):
        opt = options.get(name)
        if opt is None:
            continue  # undocumented_problems says so
        if name in reads.computed_default:
            if "default" in opt:
                problems.append("%s: the playbooks compute its default, the spec must not give one" % name)
            continue
        for value in reads.defaults[name]:
            expected = SAME_DEFAULT.get((name, value), value) if isinstance(value, str) else value
            if "default" not in opt:
                problems.append("%s: the playbooks default it to %r, the spec gives no default" % (name, value))
            elif not same_value(opt["default"], expected):
                problems.append("%s: spec default %r != the playbooks' default %r" % (name, opt["default"], value))
    return sorted(set(problems))


def type_problems(reads, options):
    problems = []
    for name, converted in sorted(reads.conversions.items()):
        opt = options.get(name)
        if opt is None:
            continue
        for spec_type in sorted(converted):
            if opt.get("type") != spec_type:
                problems.append(
                    "%s: the playbooks apply | %s, the spec says type %r" % (name, spec_type, opt.get("type"))
                )
    return problems


def choice_problems(reads, options):
    problems = []
    for name, lists in sorted(reads.choices.items()):
        opt = options.get(name)
        if opt is None:
            continue
        for accepted in lists:
            if sorted(map(str, opt.get("choices") or [])) != sorted(map(str, accepted)):
                problems.append("%s: spec choices %r != the playbooks' %r" % (name, opt.get("choices"), accepted))
    return problems


def option_doc_problems(options):
    problems = []
    for name, opt in sorted(options.items()):
        opt = opt or {}
        desc = opt.get("description")
        if isinstance(desc, list):
            desc = " ".join(d for d in desc if isinstance(d, str))
        if not isinstance(desc, str) or not desc.strip():
            problems.append("%s has no description" % name)
        spec_type = opt.get("type")
        if spec_type not in SPEC_TYPES:
            problems.append("%s has no valid type (got %r)" % (name, spec_type))
            continue
        if opt.get("required"):
            problems.append("%s is required: no playbook variable is" % name)
        default = opt.get("default")
        typed = object in SPEC_TYPES[spec_type]
        if (
            default is not None
            and not typed
            and (
                isinstance(default, bool) is not (spec_type == "bool") or not isinstance(default, SPEC_TYPES[spec_type])
            )
        ):
            problems.append("%s: default %r is not of type %s" % (name, default, spec_type))
        if "choices" in opt and not any(same_value(default, c) for c in opt["choices"]):
            problems.append("%s: default %r is not one of the choices %r" % (name, default, opt["choices"]))
    return problems


# --------------------------------------------------------------------------- the playbooks as they are


@pytest.fixture(scope="module")
def reads():
    documents = load_playbooks()
    assert "playbooks/rolling_update.yml" in documents and "playbooks/plan.yml" in documents
    return Reads().scan(documents)


@pytest.fixture(scope="module")
def options():
    spec = load_entry_point()
    assert spec, "no entry point %r in %s" % (ENTRY_POINT, SPECS)
    assert spec.get("short_description") and spec.get("description"), "the entry point says nothing about itself"
    opts = spec.get("options")
    assert isinstance(opts, dict) and opts, "entry point %r has no options" % ENTRY_POINT
    return opts


def test_the_scan_finds_the_playbook_variables(reads):
    # A floor, so a broken scan cannot pass by finding nothing.
    for name in ("rollout_serial", "rollout_lock_path", "rollout_surge_hosts", "rolling_update_rollback_scope"):
        assert name in reads.where, name
    assert "rollout_plan" not in reads.where, "the rollout_plan filter was taken for a variable"
    assert "rollout_vars" not in reads.where, "a YAML anchor was taken for a variable"


def test_every_playbook_variable_is_documented(reads, options):
    assert undocumented_problems(reads, options) == []


def test_every_documented_variable_is_read(reads, options):
    assert unread_problems(reads, options) == []


def test_defaults_are_the_playbooks_defaults(reads, options):
    assert default_problems(reads, options) == []


def test_types_and_choices_are_the_playbooks(reads, options):
    assert type_problems(reads, options) == []
    assert choice_problems(reads, options) == []
    assert reads.choices.get("rolling_update_rollback_scope"), "the scope's choices were not found"


def test_every_option_is_documented_and_typed(options):
    assert option_doc_problems(options) == []


def test_the_role_tasks_read_no_playbook_variable():
    """The entry point says these variables are the playbooks' only."""
    found = []
    role = os.path.join(ROOT, "roles", "rolling_update")
    for path in sorted(
        glob.glob(os.path.join(role, "tasks", "*.yml"))
        + glob.glob(os.path.join(role, "vars", "*.yml"))
        + glob.glob(os.path.join(role, "defaults", "*.yml"))
    ):
        with open(path) as f:
            doc = yaml.safe_load(f)
        reads = Reads().scan({os.path.relpath(path, ROOT): doc})
        found += ["%s reads %s" % (os.path.relpath(path, ROOT), name) for name in sorted(reads.where)]
    assert found == []


def test_the_main_entry_point_keeps_the_playbook_variables_out():
    main = load_entry_point("main")["options"]
    assert [name for name in main if PLAYBOOK_VAR_RE.match(name)] == []


# --------------------------------------------------------------------------- the checks can fail


SAMPLE = """
- name: Play for rollout_in_a_name_is_no_read ({{ rollout_hosts | default('app') }})
  hosts: &rollout_anchor "{{ rollout_hosts | default('app') }}"
  serial: "{{ rollout_serial | default(1) }}"
  vars:
    _rollout_scope: "{{ rolling_update_rollback_scope | default('host') }}"
    _rollout_owner: "{{ rollout_lock_owner | default(lookup('ansible.builtin.env', 'USER')) }}"
  tasks:
    - name: Check
      ansible.builtin.assert:
        that:
          - _rollout_scope in ['host', 'run']
          - rollout_gate | default(false) | bool
        fail_msg: "rollout_in_prose is no read {% set rollout_local = 1 %}{{ rollout_local }}"
    - name: Plan
      ansible.builtin.debug:
        msg: "{{ hosts_list | zerodowntime.rollout.rollout_plan(rollout_serial) }}"
      when: rollout_pause | float > 0
"""

SAMPLE_SPEC = {
    "rollout_hosts": {"description": "x", "type": "str", "default": "app"},
    "rollout_serial": {"description": "x", "type": "raw", "default": 1},
    "rolling_update_rollback_scope": {"description": "x", "type": "str", "choices": ["host", "run"], "default": "host"},
    "rollout_lock_owner": {"description": "x", "type": "str"},
    "rollout_gate": {"description": "x", "type": "bool", "default": False},
    "rollout_pause": {"description": "x", "type": "float", "default": 0},
}


@pytest.fixture
def sample_reads():
    return Reads().scan({"sample.yml": yaml.safe_load(SAMPLE)})


def test_the_scan_reads_templates_not_prose_anchors_or_filters(sample_reads):
    assert set(sample_reads.where) == {
        "rollout_hosts",
        "rollout_serial",
        "rolling_update_rollback_scope",
        "rollout_lock_owner",
        "rollout_gate",
        "rollout_pause",
    }
    assert sample_reads.defaults == {
        "rollout_hosts": ["app", "app"],
        "rollout_serial": [1],
        "rolling_update_rollback_scope": ["host"],
        "rollout_gate": [False],
    }
    assert sample_reads.computed_default == {"rollout_lock_owner"}
    assert sample_reads.conversions == {"rollout_gate": {"bool"}, "rollout_pause": {"float"}}
    assert sample_reads.choices == {"rolling_update_rollback_scope": [["host", "run"]]}


def test_the_checks_pass_on_a_matching_spec(sample_reads):
    for check in (undocumented_problems, unread_problems, default_problems, type_problems, choice_problems):
        assert check(sample_reads, SAMPLE_SPEC) == [], check.__name__
    assert option_doc_problems(SAMPLE_SPEC) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"rollout_pause": None}, "rollout_pause is read by sample.yml but not documented"),
        ({"rollout_extra": {"description": "x", "type": "str"}}, "rollout_extra is documented in the 'playbook' entry"),
        ({"rollout_serial": {"description": "x", "type": "raw", "default": 2}}, "rollout_serial: spec default 2 !="),
        ({"rollout_serial": {"description": "x", "type": "raw"}}, "rollout_serial: the playbooks default it to 1"),
        (
            {"rollout_gate": {"description": "x", "type": "bool", "default": 0}},
            "rollout_gate: spec default 0 != the playbooks' default False",
        ),
        (
            {"rollout_lock_owner": {"description": "x", "type": "str", "default": "me"}},
            "rollout_lock_owner: the playbooks compute its default",
        ),
        (
            {"rollout_pause": {"description": "x", "type": "int", "default": 0}},
            "rollout_pause: the playbooks apply | float",
        ),
        (
            {
                "rolling_update_rollback_scope": {
                    "description": "x",
                    "type": "str",
                    "choices": ["host"],
                    "default": "host",
                }
            },
            "rolling_update_rollback_scope: spec choices ['host']",
        ),
    ],
)
def test_each_mismatch_is_reported(sample_reads, change, expected):
    spec = dict(SAMPLE_SPEC)
    for name, opt in change.items():
        if opt is None:
            del spec[name]
        else:
            spec[name] = opt
    problems = []
    for check in (undocumented_problems, unread_problems, default_problems, type_problems, choice_problems):
        problems += check(sample_reads, spec)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "option, expected",
    [
        ({"type": "str"}, "has no description"),
        ({"description": "x", "type": "string"}, "has no valid type"),
        ({"description": "x", "type": "str", "required": True}, "is required"),
        ({"description": "x", "type": "int", "default": True}, "default True is not of type int"),
        ({"description": "x", "type": "bool", "default": 0}, "default 0 is not of type bool"),
        ({"description": "x", "type": "str", "choices": ["a"], "default": "b"}, "default 'b' is not one of"),
    ],
)
def test_option_docs_report_each_gap(option, expected):
    problems = option_doc_problems({"rollout_x": option})
    assert any(expected in p for p in problems), problems


def test_the_surge_hosts_empty_pattern_counts_as_the_empty_default():
    reads = Reads().scan({"x.yml": [{"hosts": "{{ rollout_surge_hosts | default('all:!all', true) }}", "tasks": []}]})
    spec = {"rollout_surge_hosts": {"description": "x", "type": "str", "default": ""}}
    assert default_problems(reads, spec) == []
