# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operator messages (``msg``, ``fail_msg``, ``prompt``) in the role and the playbooks are one line.

In a folded YAML scalar (``>-``), a continuation line indented deeper than the first keeps its line
break; outside a Jinja expression that break lands in the message, and ansible-core's error line
then shows only the part before it. Pure YAML: no Ansible run.
"""

import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
KEYS = ("msg", "fail_msg", "success_msg", "prompt")


def breaks_outside_jinja(text):
    """Snippets around every line break that is not inside ``{{ }}`` or ``{% %}``."""
    depth, i, found = 0, 0, []
    while i < len(text):
        two = text[i : i + 2]
        if two in ("{{", "{%"):
            depth, i = depth + 1, i + 2
            continue
        if two in ("}}", "%}"):
            depth, i = depth - 1, i + 2
            continue
        if text[i] == "\n" and depth == 0:
            found.append(text[max(0, i - 40) : i + 40])
        i += 1
    return found


def problems(data, where):
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in KEYS and isinstance(value, str):
                out += ["%s %s: %r" % (where, key, snippet) for snippet in breaks_outside_jinja(value.strip())]
            out += problems(value, where)
    elif isinstance(data, list):
        for item in data:
            out += problems(item, where)
    return out


def test_every_message_is_one_line():
    files = glob.glob(os.path.join(ROOT, "roles", "**", "*.yml"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "playbooks", "**", "*.yml"), recursive=True)
    assert files
    found = []
    for path in sorted(files):
        with open(path) as f:
            found += problems(yaml.safe_load(f), os.path.relpath(path, ROOT))
    assert not found, "\n".join(found)


def test_a_more_indented_continuation_line_is_caught():
    bad = yaml.safe_load("msg: >-\n  First {{ a\n     if b else c }}\n    indented text.\n  Last.\n")
    good = yaml.safe_load("msg: >-\n  First {{ a\n  if b else c }}\n  Last.\n")
    assert problems(bad, "x") and not problems(good, "x")
