# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling_update role's interface stays in step with its documentation.

``defaults/main.yml`` (what the role does when nothing is set) and ``meta/argument_specs.yml`` (what
ansible-core validates and ansible-doc shows) must list the same options with the same defaults; every
option is documented with a type; every public variable the tasks read is declared; and the names
follow the layering (public ``rolling_update_*``, computed ``_rolling_update_*``, registered
``__rolling_update_*``). Pure Python and YAML: no Ansible run.

Each check is a function that returns a list of problems, so the tests at the bottom can prove on
broken input that the checks do fail.
"""

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "rolling_update")
ENTRY_POINT = "main"
PUBLIC = "rolling_update_"
INTERNAL = "_rolling_update_"
REGISTERED = "__rolling_update_"

# A public variable as it appears in a Jinja expression or a `when:`: not preceded by a word
# character, so `_rolling_update_x` and `__rolling_update_x` are not public uses.
PUBLIC_VAR_RE = re.compile(r"(?<![A-Za-z0-9_])rolling_update_[a-z0-9_]+")

# The types an argument spec may declare, and the Python types a YAML default of that type may have.
SPEC_TYPES = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "bits": (int, str),
    "bytes": (int, str),
    "json": (str, dict, list),
    "jsonarg": (str, dict, list),
}


def load_yaml(*parts):
    with open(os.path.join(ROLE, *parts)) as f:
        return yaml.safe_load(f)


def task_files():
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(ROLE, "tasks")):
        out.extend(os.path.join(dirpath, n) for n in files if n.endswith((".yml", ".yaml")))
    return sorted(out)


# --------------------------------------------------------------------------- comparisons


def same_value(a, b):
    """Equality that YAML's loose typing cannot fool: ``False`` is not ``0``, ``"5"`` is not ``5``, and
    a templated string is compared as the string it is. An int and a float of equal value are the
    same (``0`` for a float option). Lists and dicts are compared element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def value_has_type(value, spec_type):
    allowed = SPEC_TYPES[spec_type]
    if isinstance(value, bool) and bool not in allowed and object not in allowed:
        return False  # a bool is an int to Python, not to an argument spec
    return isinstance(value, allowed)


# --------------------------------------------------------------------------- checks (lists of problems)


def spec_vs_defaults_problems(defaults, options):
    """Same keys; same default values; a required option has no default anywhere."""
    problems = []
    for name in sorted(set(defaults) - set(options)):
        problems.append("%s is in defaults/main.yml but not in the argument spec" % name)
    for name in sorted(set(options) - set(defaults)):
        opt = options[name] or {}
        if not (opt.get("required") and "default" not in opt):
            problems.append("%s is in the argument spec but not in defaults/main.yml" % name)
    for name in sorted(set(options) & set(defaults)):
        opt = options[name] or {}
        if opt.get("required"):
            problems.append("%s is required in the spec but has a default in defaults/main.yml" % name)
        elif "default" not in opt:
            problems.append("%s has no default in the spec (defaults/main.yml: %r)" % (name, defaults[name]))
        elif not same_value(opt["default"], defaults[name]):
            problems.append(
                "%s: spec default %r (%s) != defaults/main.yml %r (%s)"
                % (name, opt["default"], type(opt["default"]).__name__, defaults[name], type(defaults[name]).__name__)
            )
    return problems


def option_doc_problems(options):
    """Every option has a description and a valid type; lists say their elements; a default fits the
    type; choices hold the default."""
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
        if spec_type == "list" and "elements" not in opt:
            problems.append("%s is a list without elements" % name)
        if "default" in opt and opt["default"] is not None and not value_has_type(opt["default"], spec_type):
            problems.append("%s: default %r is not of type %s" % (name, opt["default"], spec_type))
        if "choices" in opt:
            choices = opt["choices"]
            if not isinstance(choices, list) or not choices:
                problems.append("%s: choices must be a non-empty list" % name)
            elif "default" in opt and not any(same_value(opt["default"], c) for c in choices):
                problems.append("%s: default %r is not one of the choices %r" % (name, opt["default"], choices))
    return problems


def strings_outside_tags(node):
    """Every string (keys and values) of a parsed YAML document, except tag names, which share the
    ``rolling_update_*`` prefix without being variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                continue
            if isinstance(key, str):
                yield key
            yield from strings_outside_tags(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_outside_tags(item)
    elif isinstance(node, str):
        yield node


def public_vars_used(documents):
    """{variable: [where]} for every public variable named in the documents ({where: parsed YAML})."""
    used = {}
    for where, doc in documents.items():
        for text in strings_outside_tags(doc):
            for name in PUBLIC_VAR_RE.findall(text):
                used.setdefault(name, []).append(where)
    return used


# Facts the role sets for its caller (the playbook reads them instead of the role's internals). Each is
# documented in the main entry point's description in meta/argument_specs.yml.
OUTPUTS = ("rolling_update_decision", "rolling_update_plan_host")


def undeclared_problems(used, options):
    return [
        "%s is used in %s but not declared in the argument spec" % (name, ", ".join(sorted(set(where))))
        for name, where in sorted(used.items())
        if name not in options and name not in OUTPUTS
    ]


def naming_problems(defaults, options, role_vars, tasks):
    """Public, internal and registered names each carry their prefix ({file: parsed YAML} for tasks)."""
    problems = []
    for name in sorted(set(defaults) | set(options)):
        if not name.startswith(PUBLIC):
            problems.append("public variable %s does not start with %s" % (name, PUBLIC))
    for name in sorted(role_vars):
        if not name.startswith(INTERNAL):
            problems.append("vars/main.yml key %s does not start with %s" % (name, INTERNAL))

    def walk(node, where):
        if isinstance(node, list):
            for item in node:
                walk(item, where)
        elif isinstance(node, dict):
            reg = node.get("register")
            if isinstance(reg, str) and not reg.startswith(REGISTERED):
                problems.append("%s: registered variable %s does not start with %s" % (where, reg, REGISTERED))
            for fact_module in ("ansible.builtin.set_fact", "set_fact"):
                facts = node.get(fact_module)
                if isinstance(facts, dict):
                    for fact in facts:
                        if fact != "cacheable" and not fact.startswith(INTERNAL) and fact not in OUTPUTS:
                            problems.append("%s: fact %s does not start with %s" % (where, fact, INTERNAL))
            for key, value in node.items():
                if key != "tags":
                    walk(value, where)

    for where, doc in sorted(tasks.items()):
        walk(doc, where)
    return problems


# --------------------------------------------------------------------------- the role as it is


@pytest.fixture(scope="module")
def defaults():
    data = load_yaml("defaults", "main.yml")
    assert isinstance(data, dict) and data, "defaults/main.yml is empty"
    return data


@pytest.fixture(scope="module")
def options():
    specs = load_yaml("meta", "argument_specs.yml")
    assert ENTRY_POINT in specs.get("argument_specs", {}), "no entry point %r in meta/argument_specs.yml" % ENTRY_POINT
    opts = specs["argument_specs"][ENTRY_POINT].get("options")
    assert isinstance(opts, dict) and opts, "entry point %r has no options" % ENTRY_POINT
    return opts


@pytest.fixture(scope="module")
def role_vars():
    return load_yaml("vars", "main.yml") or {}


@pytest.fixture(scope="module")
def tasks():
    files = task_files()
    assert files, "no task files under %s" % os.path.join(ROLE, "tasks")
    docs = {}
    for path in files:
        with open(path) as f:
            docs[os.path.relpath(path, ROLE)] = yaml.safe_load(f)
    return docs


def test_defaults_and_spec_list_the_same_options_with_the_same_defaults(defaults, options):
    assert spec_vs_defaults_problems(defaults, options) == []


def test_every_option_is_documented_and_typed(options):
    assert option_doc_problems(options) == []


def test_every_public_variable_the_role_reads_is_declared(options, tasks, role_vars):
    documents = dict(tasks)
    documents["vars/main.yml"] = role_vars
    used = public_vars_used(documents)
    assert "rolling_update_version" in used, "the scan found nothing: is the regex broken?"
    assert undeclared_problems(used, options) == []


def test_every_output_is_documented_and_set_by_the_role(tasks):
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as f:
        description = " ".join(yaml.safe_load(f)["argument_specs"]["main"]["description"])
    set_facts = str([t for doc in tasks.values() for t in (doc or [])])
    for name in OUTPUTS:
        assert "C(%s)" % name in description, name
        assert "'%s'" % name in set_facts, name


def test_names_carry_their_layer_prefix(defaults, options, role_vars, tasks):
    assert naming_problems(defaults, options, role_vars, tasks) == []


# --------------------------------------------------------------------------- the checks can fail


GOOD_SPEC = {
    "rolling_update_version": {"description": "x", "type": "str", "required": True},
    "rolling_update_lb": {"description": "x", "type": "str", "choices": ["haproxy", "none"], "default": "haproxy"},
    "rolling_update_server": {"description": "x", "type": "str", "default": "{{ inventory_hostname }}"},
    "rolling_update_wait": {"description": "x", "type": "float", "default": 0},
    "rolling_update_codes": {"description": "x", "type": "list", "elements": "int", "default": [200]},
}
GOOD_DEFAULTS = {
    "rolling_update_lb": "haproxy",
    "rolling_update_server": "{{ inventory_hostname }}",
    "rolling_update_wait": 0.0,
    "rolling_update_codes": [200],
}


def test_checks_pass_on_consistent_input():
    assert spec_vs_defaults_problems(GOOD_DEFAULTS, GOOD_SPEC) == []
    assert option_doc_problems(GOOD_SPEC) == []


@pytest.mark.parametrize(
    "defaults_change, spec_change, expected",
    [
        ({"rolling_update_extra": 1}, {}, "rolling_update_extra is in defaults/main.yml but not in the argument spec"),
        (
            {},
            {"rolling_update_extra": {"description": "x", "type": "int", "default": 1}},
            "rolling_update_extra is in the argument spec but not in defaults/main.yml",
        ),
        ({"rolling_update_version": "v1"}, {}, "rolling_update_version is required in the spec but has a default"),
        ({"rolling_update_codes": ["200"]}, {}, "rolling_update_codes: spec default [200] (list)"),
        ({"rolling_update_server": "{{inventory_hostname}}"}, {}, "rolling_update_server: spec default"),
        ({"rolling_update_wait": False}, {}, "rolling_update_wait: spec default 0 (int) != defaults/main.yml False"),
        (
            {},
            {"rolling_update_lb": {"description": "x", "type": "str", "choices": ["haproxy", "none"]}},
            "rolling_update_lb has no default in the spec",
        ),
    ],
)
def test_spec_vs_defaults_reports_each_mismatch(defaults_change, spec_change, expected):
    defaults = dict(GOOD_DEFAULTS, **defaults_change)
    spec = dict(GOOD_SPEC, **spec_change)
    problems = spec_vs_defaults_problems(defaults, spec)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "option, expected",
    [
        ({"type": "str", "default": ""}, "has no description"),
        ({"description": ["", " "], "type": "str", "default": ""}, "has no description"),
        ({"description": "x", "default": ""}, "has no valid type"),
        ({"description": "x", "type": "string", "default": ""}, "has no valid type"),
        ({"description": "x", "type": "list", "default": []}, "is a list without elements"),
        ({"description": "x", "type": "int", "default": "5"}, "default '5' is not of type int"),
        ({"description": "x", "type": "int", "default": True}, "default True is not of type int"),
        ({"description": "x", "type": "str", "choices": ["a", "b"], "default": "c"}, "default 'c' is not one of"),
        ({"description": "x", "type": "str", "choices": [], "default": "c"}, "choices must be a non-empty list"),
    ],
)
def test_option_docs_report_each_gap(option, expected):
    problems = option_doc_problems({"rolling_update_x": option})
    assert any(expected in p for p in problems), problems


def test_the_scan_finds_public_variables_but_not_tags_or_internal_names():
    doc = yaml.safe_load(
        """
- name: Step {{ rolling_update_version }}
  ansible.builtin.command: "{{ rolling_update_undeclared_thing }}"
  when: rolling_update_lb == 'haproxy' and _rolling_update_skip and __rolling_update_result is defined
  tags: [rolling_update, rolling_update_deploy]
  vars:
    __rolling_update_tmp: "{{ rolling_update_path ~ '/x' }}"
# a comment naming rolling_update_in_a_comment is not a use
"""
    )
    used = public_vars_used({"tasks/x.yml": doc})
    assert set(used) == {
        "rolling_update_version",
        "rolling_update_undeclared_thing",
        "rolling_update_lb",
        "rolling_update_path",
    }
    assert undeclared_problems(used, GOOD_SPEC) == [
        "rolling_update_path is used in tasks/x.yml but not declared in the argument spec",
        "rolling_update_undeclared_thing is used in tasks/x.yml but not declared in the argument spec",
    ]


def test_naming_reports_each_layer():
    tasks = {
        "tasks/x.yml": [
            {"name": "a", "ansible.builtin.stat": {"path": "/"}, "register": "result"},
            {"name": "b", "ansible.builtin.set_fact": {"skip_it": True, "cacheable": False}},
            {
                "name": "c",
                "block": [{"name": "d", "ansible.builtin.stat": {"path": "/"}, "register": "_rolling_update_x"}],
            },
        ]
    }
    problems = naming_problems({"app_path": "/opt"}, {"rolling_update_ok": {}}, {"rolling_update_computed": 1}, tasks)
    assert problems == [
        "public variable app_path does not start with rolling_update_",
        "vars/main.yml key rolling_update_computed does not start with _rolling_update_",
        "tasks/x.yml: registered variable result does not start with __rolling_update_",
        "tasks/x.yml: fact skip_it does not start with _rolling_update_",
        "tasks/x.yml: registered variable _rolling_update_x does not start with __rolling_update_",
    ]
