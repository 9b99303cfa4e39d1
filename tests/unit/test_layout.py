# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tree's layout keeps its measures (issue #16).

- No file under ``plugins/`` is longer than 450 lines, docstrings included: a file that grows past it does
  several jobs and is split into a package by job (docs/architecture.md).
- Test infrastructure belongs to ``tests/``: no file under ``tests/`` or ``molecule/`` imports from
  ``demo/`` (a ``demo`` or ``demo.x`` module) or names a path inside it. ``demo/`` may import the fixtures
  under ``tests/fixtures/``, not the other way round. Prose (comments, docstrings, task names) may still
  mention the demo.

Pure Python and YAML: no Ansible run.
"""

import ast
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_LINES = 450
SKIP_DIRS = {"__pycache__", "output", ".pytest_cache", ".ruff_cache"}

# A path into demo/: "demo/" at the start of a string or after a separator, a quote, a brace or a space
# ({{ molecule_project_dir }}/demo/fleet.py, ../../demo/run).
DEMO_PATH_RE = re.compile(r"(?:^|[\s/\"'{}=:(])demo/")
# A demo module named in a YAML value (inline Python, `python -m demo.fleet`): from demo.x import, import demo.x.
DEMO_MODULE_RE = re.compile(r"(?:^|\s)(?:from\s+demo(?:\.\w+)*\s+import\b|import\s+demo\b|-m\s+demo\b|demo\.[a-z_]+\b)")
# The functions that build a path from parts: os.path.join(ROOT, "demo", ...), Path(ROOT, "demo").
PATH_BUILDERS = {"join", "Path", "PurePath", "joinpath"}


def files_under(*parts, suffixes=None):
    top = os.path.join(ROOT, *parts)
    out = []
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if suffixes is None or name.endswith(suffixes):
                out.append(os.path.join(dirpath, name))
    return out


def line_count(path):
    with open(path, "rb") as f:
        return sum(1 for _line in f)


# --------------------------------------------------------------------------- the checks


def long_file_problems(paths, limit=MAX_LINES):
    problems = []
    for path in paths:
        n = line_count(path)
        if n > limit:
            problems.append("%s has %d lines (at most %d)" % (os.path.relpath(path, ROOT), n, limit))
    return problems


def _docstring_nodes(tree):
    """The docstring constants of a module, its classes and functions (prose, not code)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _is_demo_module(name):
    return name == "demo" or (name or "").startswith("demo.")


def python_demo_uses(source, where="<source>"):
    """Every import of a demo module and every path into demo/ in a Python source (not its prose)."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += ["%s:%d imports %s" % (where, line, a.name) for a in node.names if _is_demo_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_demo_module(node.module):
            found.append("%s:%d imports from %s" % (where, line, node.module))
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if fname in ("import_module", "__import__") and args and _is_demo_module(args[0]):
                found.append("%s:%d imports %s" % (where, line, args[0]))
            elif fname in PATH_BUILDERS and "demo" in args:
                found.append("%s:%d builds a path into demo/" % (where, line))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if isinstance(node.right, ast.Constant) and node.right.value == "demo":
                found.append("%s:%d builds a path into demo/" % (where, line))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and DEMO_PATH_RE.search(node.value)
        ):
            found.append("%s:%d names a path in demo/: %r" % (where, line, node.value[:80]))
    return sorted(found, key=lambda f: int(f.split(" ", 1)[0].rsplit(":", 1)[1]))


def _yaml_strings(node, key=None):
    if isinstance(node, dict):
        for k, value in node.items():
            yield from _yaml_strings(value, k)
    elif isinstance(node, list):
        for item in node:
            yield from _yaml_strings(item, key)
    elif isinstance(node, str) and key != "name":
        yield node


def yaml_demo_uses(text, where="<yaml>"):
    """Every path into demo/ in a YAML document's values (task names and comments are prose)."""
    found = []
    for doc in yaml.safe_load_all(text):
        for value in _yaml_strings(doc):
            if DEMO_PATH_RE.search(value) or DEMO_MODULE_RE.search(value):
                found.append("%s uses demo/: %r" % (where, value.strip()[:100]))
    return found


def demo_problems(paths):
    problems = []
    for path in paths:
        where = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".py"):
            problems += python_demo_uses(text, where)
        else:
            problems += yaml_demo_uses(text, where)
    return problems


# --------------------------------------------------------------------------- the tree as it is


def test_no_file_under_plugins_is_longer_than_450_lines():
    paths = files_under("plugins")
    assert any(p.endswith(os.path.join("modules", "rotation.py")) for p in paths), "no plugins found"
    problems = long_file_problems(paths)
    assert problems == [], "\n".join(problems)


def test_no_test_or_molecule_file_uses_demo():
    paths = files_under("tests", suffixes=(".py", ".yml", ".yaml"))
    paths += files_under("molecule", suffixes=(".py", ".yml", ".yaml"))
    paths.remove(os.path.abspath(__file__))  # its own samples below name demo/ on purpose
    assert len(paths) > 10, "no test files found"
    problems = demo_problems(paths)
    assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------- the checks can fail


def test_a_long_file_is_reported(tmp_path):
    short, long_ = tmp_path / "short.py", tmp_path / "long.py"
    short.write_text("x = 1\n" * MAX_LINES)
    long_.write_text('"""doc"""\n' + "x = 1\n" * MAX_LINES)
    problems = long_file_problems([str(short), str(long_)])
    assert len(problems) == 1 and "long.py has 451 lines" in problems[0], problems


def test_python_imports_and_paths_into_demo_are_found():
    source = '''
"""Runs demo/fleet.py in its docstring: prose, not a use."""
import os
import demo
import demo.fleet as fleet
from demo.rollout import run_playbook
from tests.fixtures.fleet import Fleet  # the fixtures are fine
# demo/loadgen.py in a comment is prose too
FLEET = os.path.join(ROOT, "demo", "fleet.py")
CTL = ROOT / "demo" / "bin"
ARGV = ["python", "../demo/rollout.py"]
mod = importlib.import_module("demo.loadgen")


def f():
    """demo/ in a function's docstring."""
    return "a demonstration/ is not demo"
'''
    found = python_demo_uses(source, "x.py")
    assert [f.split(" ", 1)[0] for f in found] == [
        "x.py:4",
        "x.py:5",
        "x.py:6",
        "x.py:9",
        "x.py:10",
        "x.py:11",
        "x.py:12",
    ], found


def test_yaml_paths_into_demo_are_found():
    text = """
- name: Stop the demo/ fleet (a name is prose)
  # demo/fleet.py in a comment is prose
  ansible.builtin.command:
    argv: ["{{ ansible_playbook_python }}", "{{ molecule_project_dir }}/demo/fleet.py", "stop"]
- name: Run the module form
  ansible.builtin.command: "{{ ansible_playbook_python }} -m demo.fleet status"
- name: Fine
  ansible.builtin.command: "{{ ansible_playbook_python }} {{ molecule_project_dir }}/tests/fixtures/fleet/fleet.py"
"""
    found = yaml_demo_uses(text, "x.yml")
    assert len(found) == 2 and "/demo/fleet.py" in found[0] and "-m demo.fleet" in found[1], found
