# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/architecture.md stays a true map of the tree.

- Every file and package directly under the plugin directories below is named in the doc by its path from the
  repository root (``plugins/module_utils/_haproxy/`` for a package, ``plugins/modules/rotation.py`` for a
  file), so a new one cannot land without a place on the map.
- Every path the doc names in backticks exists: a path from the repository root (``plugins/...``,
  ``roles/...``), or a bare file name (``transport.py``) after a package path on the same line, which is read
  inside that package. Every relative Markdown link points at a file.

Pure Python: no Ansible run.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "architecture.md")
MAPPED_DIRS = (
    "plugins/module_utils",
    "plugins/plugin_utils",
    "plugins/action",
    "plugins/modules",
    "plugins/filter",
    "plugins/lookup",
    "plugins/callback",
    "plugins/doc_fragments",
)
IGNORED = {"__init__.py", "__pycache__"}
TOP_DIRS = ("plugins", "roles", "playbooks", "tests", "docs", "meta", "molecule", "bench", "demo", "scripts")

CODE_RE = re.compile(r"`([^`\n]+)`")
ROOTED_RE = re.compile(r"^(?:%s)/[A-Za-z0-9_./-]*$" % "|".join(TOP_DIRS))
BARE_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]+\.(?:py|yml|yaml|j2|md|json)$")
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def entries(root=ROOT):
    """Every file and package directly under the mapped directories, as 'plugins/x/name' ('name/' for a
    directory)."""
    out = []
    for rel in MAPPED_DIRS:
        top = os.path.join(root, rel)
        if not os.path.isdir(top):
            continue
        for name in sorted(os.listdir(top)):
            if name in IGNORED or name.startswith("."):
                continue
            is_dir = os.path.isdir(os.path.join(top, name))
            out.append("%s/%s%s" % (rel, name, "/" if is_dir else ""))
    return out


def named_paths(text):
    """(line number, path) for every path the doc names: rooted ones as written, bare file names resolved
    against the last package (a rooted path ending in '/') named before them on the same line."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        package = None
        for token in CODE_RE.findall(line):
            token = token.strip()
            if ROOTED_RE.match(token):
                out.append((number, token))
                if token.endswith("/"):
                    package = token
            elif package and BARE_FILE_RE.match(token):
                out.append((number, package + token))
    return out


def unnamed_problems(text, root=ROOT):
    named = {path for _n, path in named_paths(text)}
    return ["%s is not named in docs/architecture.md" % entry for entry in entries(root) if entry not in named]


def missing_problems(text, root=ROOT, doc_dir="docs"):
    problems = []
    for number, path in named_paths(text):
        if not os.path.exists(os.path.join(root, path.rstrip("/"))):
            problems.append("docs/architecture.md:%d names %s, which does not exist" % (number, path))
        elif path.endswith("/") and not os.path.isdir(os.path.join(root, path)):
            problems.append("docs/architecture.md:%d names %s as a package, it is a file" % (number, path))
    for number, line in enumerate(text.splitlines(), 1):
        for target in LINK_RE.findall(line):
            if "://" in target or target.startswith("#"):
                continue
            if not os.path.exists(os.path.join(root, doc_dir, target.split("#", 1)[0])):
                problems.append("docs/architecture.md:%d links to %s, which does not exist" % (number, target))
    return problems


def read_doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------------------------- the tree as it is


def test_every_plugin_file_and_package_is_on_the_map():
    found = entries()
    assert "plugins/modules/rotation.py" in found and any(e.startswith("plugins/module_utils/_") for e in found)
    problems = unnamed_problems(read_doc())
    assert problems == [], "\n".join(problems)


def test_every_path_on_the_map_exists():
    text = read_doc()
    assert len(named_paths(text)) > 40, "the doc names almost no path: is the scan broken?"
    problems = missing_problems(text)
    assert problems == [], "\n".join(problems)


def test_the_readme_links_the_map():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "(docs/architecture.md)" in f.read()


# --------------------------------------------------------------------------- the checks can fail


def _tree(tmp_path):
    (tmp_path / "plugins" / "modules").mkdir(parents=True)
    (tmp_path / "plugins" / "modules" / "thing.py").write_text("")
    (tmp_path / "plugins" / "modules" / "__init__.py").write_text("")
    pkg = tmp_path / "plugins" / "module_utils" / "_thing"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "wire.py").write_text("")
    (pkg / "__pycache__").mkdir()
    (tmp_path / "plugins" / "module_utils" / "_one.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("")
    return tmp_path


def test_entries_are_files_and_packages_directly_under_the_mapped_dirs(tmp_path):
    root = _tree(tmp_path)
    assert entries(str(root)) == [
        "plugins/module_utils/_one.py",
        "plugins/module_utils/_thing/",
        "plugins/modules/thing.py",
    ]


def test_a_complete_map_passes_and_gaps_are_reported(tmp_path):
    root = str(_tree(tmp_path))
    good = (
        "| Thing | `plugins/modules/thing.py` |\n"
        "| Logic | `plugins/module_utils/_thing/` (`wire.py`), `plugins/module_utils/_one.py` |\n"
        "See [other](other.md), [section](#x), [web](https://example.com/) and `rolling_update_version`.\n"
    )
    assert unnamed_problems(good, root) == []
    assert missing_problems(good, root) == []

    partial = "Only `plugins/modules/thing.py` here; `wire.py` without a package before it is not read.\n"
    assert unnamed_problems(partial, root) == [
        "plugins/module_utils/_one.py is not named in docs/architecture.md",
        "plugins/module_utils/_thing/ is not named in docs/architecture.md",
    ]

    stale = (
        "`plugins/module_utils/_gone.py`, `plugins/module_utils/_thing/` (`wire.py`, `old.py`),\n"
        "`plugins/module_utils/_one.py/`, [gone](gone.md)\n"
    )
    assert missing_problems(stale, root) == [
        "docs/architecture.md:1 names plugins/module_utils/_gone.py, which does not exist",
        "docs/architecture.md:1 names plugins/module_utils/_thing/old.py, which does not exist",
        "docs/architecture.md:2 names plugins/module_utils/_one.py/ as a package, it is a file",
        "docs/architecture.md:2 links to gone.md, which does not exist",
    ]
