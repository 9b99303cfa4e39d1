# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ansible-doc -t role`` shows every playbook variable.

Runs the ansible-doc of the running Python's environment (``.venv`` or ``.venv-min``) once on this
checkout, through the collections root that the repository's conftest.py links under ``.cache/``, and
looks for every variable the playbooks read (test_playbook_spec.py's scan) in the ``playbook`` entry
point of its JSON, with the spec's type and default. The ``main`` entry point must still be there and
hold none of them.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml


def _load_scan():
    """test_playbook_spec.py, by path: its scan is the one list of what the playbooks read (tests/unit is
    no package, so a relative import would depend on pytest's import mode)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_playbook_spec.py")
    spec = importlib.util.spec_from_file_location("_zerodowntime_playbook_spec_scan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_scan = _load_scan()
ENTRY_POINT, ROOT, SPECS, Reads, load_playbooks = (
    _scan.ENTRY_POINT,
    _scan.ROOT,
    _scan.SPECS,
    _scan.Reads,
    _scan.load_playbooks,
)

ROLE = "zerodowntime.rollout.rolling_update"
COLLECTIONS_ROOT = os.path.join(ROOT, ".cache", "collections")


def find_ansible_doc():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    return candidate if os.access(candidate, os.X_OK) else shutil.which("ansible-doc")


@pytest.fixture(scope="module")
def role_doc():
    ansible_doc = find_ansible_doc()
    if not ansible_doc:
        pytest.skip("no ansible-doc next to %s nor on PATH (run `make venv`)" % sys.executable)
    assert os.path.isdir(os.path.join(COLLECTIONS_ROOT, "ansible_collections", "zerodowntime", "rollout", "roles"))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    proc = subprocess.run(
        [ansible_doc, "-t", "role", ROLE, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert ROLE in doc, sorted(doc)
    return doc[ROLE]


def test_ansible_doc_shows_every_playbook_variable(role_doc):
    entry_points = role_doc.get("entry_points") or {}
    assert ENTRY_POINT in entry_points, sorted(entry_points)
    shown = entry_points[ENTRY_POINT].get("options") or {}
    read = Reads().scan(load_playbooks()).where
    assert "rollout_serial" in read, "the scan found nothing"
    missing = sorted(set(read) - set(shown))
    assert missing == [], "read by the playbooks, not shown by ansible-doc -t role %s -e %s" % (ROLE, ENTRY_POINT)


def test_ansible_doc_shows_the_spec_as_written(role_doc):
    with open(SPECS) as f:
        spec = yaml.safe_load(f)["argument_specs"][ENTRY_POINT]
    shown = role_doc["entry_points"][ENTRY_POINT]
    assert shown.get("short_description") == spec["short_description"]
    for name, opt in spec["options"].items():
        assert shown["options"][name].get("type") == opt["type"], name
        assert shown["options"][name].get("default") == opt.get("default"), name
        assert shown["options"][name].get("choices") == opt.get("choices"), name


def test_the_main_entry_point_is_still_shown_without_them(role_doc):
    main = role_doc["entry_points"]["main"]
    assert "rolling_update_version" in main["options"]
    read = Reads().scan(load_playbooks()).where
    assert sorted(set(read) & set(main["options"])) == []
