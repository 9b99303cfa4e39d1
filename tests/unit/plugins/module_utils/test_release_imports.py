# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each release-related module ships and loads: the modules that do not unpack carry no archive or download
code (AnsiballZ sends a module's whole import closure as source, compiled on every run)."""

import ast
import os
import subprocess
import sys

import pytest

PREFIX = "ansible_collections.zerodowntime.rollout.plugins.module_utils."
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
UNPACK_CODE = {"_archive", "_unpack", "_download", "_release", "_s3", "_artifact_source"}


def shipped(path):
    """Names of the collection's module_utils that AnsiballZ ships with ``path``: every import found anywhere in the
    file (in a function too), followed through the module_utils it reaches."""
    found, todo = set(), [path]
    while todo:
        with open(todo.pop(), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
                name = node.module[len(PREFIX) :]
                # from <package> import <submodule>: the submodules are what is shipped
                package = os.path.isdir(os.path.join(ROOT, "plugins", "module_utils", *name.split(".")))
                for full in [name + "." + alias.name for alias in node.names] if package else [name]:
                    if full not in found:
                        found.update((full, full.split(".")[0]))  # a package's submodule counts as the package too
                        todo.append(os.path.join(ROOT, "plugins", "module_utils", *full.split(".")) + ".py")
    return found


@pytest.mark.parametrize("module", ["app_replace", "app_info", "release_info"])
def test_modules_that_do_not_unpack_ship_no_archive_or_download_code(module):
    closure = shipped(os.path.join(ROOT, "plugins", "modules", module + ".py"))
    assert "_layout" in closure
    assert closure.isdisjoint(UNPACK_CODE), sorted(closure & UNPACK_CODE)


@pytest.mark.parametrize("module", ["release", "app_prepare"])
def test_modules_that_unpack_ship_the_unpack_code(module):
    assert {"_unpack", "_archive", "_release"} <= shipped(os.path.join(ROOT, "plugins", "modules", module + ".py"))


def test_app_prepare_loads_the_unpack_code_only_when_it_unpacks():
    script = (
        "import sys\n"
        "import ansible_collections.zerodowntime.rollout.plugins.module_utils._prepare\n"
        "import ansible_collections.zerodowntime.rollout.plugins.module_utils._replace\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(%r) or m == 'tarfile')))\n" % PREFIX
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))  # conftest's roots
    argv = [sys.executable, "-c", script]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60)
    loaded = {name.rsplit(".", 1)[-1] for name in out.stdout.split()}
    assert {"_app_info", "_activate", "_release_state"} <= loaded
    assert loaded.isdisjoint({"_archive", "_unpack", "_release", "tarfile"}), sorted(loaded)
