# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/gen_reference.py: Ansible markup to Markdown, page rendering, and ``--check``.

The tests feed the generator a hand-written ``ansible-doc --json``-shaped document, so no Ansible
process runs. The real ansible-doc path is exercised by ``make docs-check`` on this checkout.
"""

import copy
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gen_reference.py"
if not SCRIPT.is_file():  # ansible-test runs on a copy of what ships, without scripts/
    pytest.skip("scripts/gen_reference.py is not in this tree", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

FAKE_DOCS = {
    "collection": "zerodowntime.rollout",
    "plugins": {
        "module": {
            "widget": {
                "doc": {
                    "short_description": "Manage a widget",
                    "description": ["Sets O(state) on a widget, see M(zerodowntime.rollout.gadget).", "Second."],
                    "version_added": "0.1.0",
                    "filename": "/somewhere/ansible_collections/zerodowntime/rollout/plugins/modules/widget.py",
                    "requirements": ["python >= 3.8"],
                    "options": {
                        "state": {
                            "description": "V(on) or V(off).",
                            "type": "str",
                            "choices": ["on", "off"],
                            "default": "on",
                        },
                        "spec": {
                            "description": "Nested.",
                            "type": "list",
                            "elements": "dict",
                            "required": True,
                            "aliases": ["specs"],
                            "suboptions": {"port": {"description": "A port, e.g. C(80).", "type": "int"}},
                        },
                    },
                    "attributes": {
                        "check_mode": {"description": "Check mode.", "support": "full"},
                        "diff_mode": {"description": "Diff mode.", "support": "none"},
                    },
                    "notes": ["Returns RV(result.items)."],
                    "seealso": [{"module": "ansible.builtin.uri"}, {"name": "Site", "link": "https://example.org/"}],
                    "author": ["Someone (@someone)"],
                },
                "examples": "\n- name: Turn it on\n  zerodowntime.rollout.widget:\n    state: on\n",
                "return": {
                    "result": {
                        "description": "What happened.",
                        "type": "dict",
                        "returned": "always",
                        "contains": {"items": {"description": "Items.", "type": "list", "sample": [1, 2]}},
                    }
                },
                "metadata": None,
            },
            "gadget": {"doc": {"short_description": "A gadget | pipes", "options": {}}, "examples": "", "return": {}},
        },
        "role": {
            "thing": {
                "collection": "zerodowntime.rollout",
                "entry_points": {
                    "main": {
                        "short_description": "Do the thing",
                        "description": ["Uses O(thing_x)."],
                        "options": {"thing_x": {"description": "X.", "type": "int", "default": 0}},
                    }
                },
            }
        },
    },
}


def fake_loader(_root):
    return copy.deepcopy(FAKE_DOCS)


def md(text, table=False, page="modules/widget.md", **ctx):
    renderer = gen.Renderer("zerodowntime.rollout", gen.page_paths(FAKE_DOCS))
    return renderer.markup(text, dict(ctx, page=page), table)


# -- markup -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("C(foo) and V(bar) and E(HOME)", "`foo` and `bar` and `HOME`"),
        ("I(italic) B(bold)", "*italic* **bold**"),
        ("C(a `tick`)", "`` a `tick` ``"),
        ("U(https://x.org/a)", "[https://x.org/a](https://x.org/a)"),
        ("L(the site, https://x.org/)", "[the site](https://x.org/)"),
        ("R(a ref, some_label)", "a ref"),
        ("M(zerodowntime.rollout.gadget)", "[`zerodowntime.rollout.gadget`](gadget.md)"),
        ("M(zerodowntime.rollout.thing)", "[`zerodowntime.rollout.thing`](../roles/thing.md)"),
        ("M(zerodowntime.rollout.nothing)", "`zerodowntime.rollout.nothing`"),
        (
            "M(ansible.builtin.uri)",
            "[`ansible.builtin.uri`](https://docs.ansible.com/ansible/latest/collections/ansible/builtin/uri_module.html)",
        ),
        (
            "P(ansible.builtin.default#filter)",
            "[`ansible.builtin.default`]"
            "(https://docs.ansible.com/ansible/latest/collections/ansible/builtin/default_filter.html)",
        ),
        ("O(unknown=1) RV(nope)", "`unknown=1` `nope`"),
        ("O(ignore:gone)", "`gone`"),
        ("V(a\\)b)", "`a)b`"),
        # classic markup ends at the first parenthesis, as in ansible-doc
        ("C(MAINT (via x))", "`MAINT (via x`)"),
        ("C(unclosed", "C(unclosed"),
        ("ABC(x) is not markup", "ABC(x) is not markup"),
        ("a*b* [x] <y> _lead snake_case", "a\\*b\\* \\[x\\] \\<y\\> \\_lead snake_case"),
        ("one HORIZONTALLINE two", "one \n\n---\n\n two"),
    ],
)
def test_markup(text, expected):
    assert md(text) == expected


def test_markup_links_known_options_and_return_values():
    ctx = {"parameters": {"state", "spec.port"}, "returns": {"result.items"}}
    assert md("O(state=on)", **ctx) == "[`state=on`](#parameter-state)"
    assert md("O(spec[].port)", **ctx) == "[`spec[].port`](#parameter-spec/port)"
    assert md("RV(result.items)", **ctx) == "[`result.items`](#return-result/items)"
    assert md("O(state)", anchor_prefix="main--", **ctx) == "[`state`](#main--parameter-state)"
    assert md("O(zerodowntime.rollout.gadget#module:name)", **ctx) == (
        "`name` of [`zerodowntime.rollout.gadget`](gadget.md)"
    )


def test_markup_in_table_cells_escapes_pipes_and_newlines():
    assert md("a | b\nc C(x|y)", table=True) == "a \\| b c `x\\|y`"
    assert md("C(x|y)") == "`x|y`"


# -- pages --------------------------------------------------------------------------------------


def test_render_module_page():
    files = gen.render_all(fake_loader(None))
    assert sorted(files) == ["index.md", "modules/gadget.md", "modules/widget.md", "roles/thing.md"]
    page = files["modules/widget.md"]
    assert page.startswith(gen.MARKER + "\n")
    assert "# zerodowntime.rollout.widget module" in page
    assert "Source: [plugins/modules/widget.py](../../../plugins/modules/widget.py)" in page
    assert "/somewhere" not in page
    assert "- Sets [`state`](#parameter-state) on a widget, see [`zerodowntime.rollout.gadget`](gadget.md)." in page
    assert '| <a id="parameter-state"></a>`state` | str | no | `"on"` | `"on"`, `"off"` | `on` or `off`. |' in page
    assert (
        '| <a id="parameter-spec"></a>`spec` | list / elements=dict | yes |  |  | Nested.<br>Aliases: `specs`. |'
        in page
    )
    assert '| &emsp;&emsp;↳ <a id="parameter-spec/port"></a>`port` | int | no |  |  | A port, e.g. `80`. |' in page
    assert "| `check_mode` | full | Check mode. |" in page
    assert "| `diff_mode` | none | Diff mode. |" in page
    assert "```yaml\n- name: Turn it on\n  zerodowntime.rollout.widget:\n    state: on\n```" in page
    assert '| <a id="return-result"></a>`result` | dict | always | What happened. |' in page
    assert '| &emsp;&emsp;↳ <a id="return-result/items"></a>`items` | list |  | Items.<br>Sample: `[1, 2]` |' in page
    assert "- Returns [`result.items`](#return-result/items)." in page
    assert "- [Site](https://example.org/)" in page
    # sections in a fixed order
    order = [page.index("## " + s) for s in ("Synopsis", "Requirements", "Parameters", "Attributes", "Notes")]
    assert order == sorted(order)
    assert page.index("## Examples") < page.index("## Return values")


def test_render_index_and_role_page():
    files = gen.render_all(fake_loader(None))
    index = files["index.md"]
    assert "| [`zerodowntime.rollout.gadget`](modules/gadget.md) | A gadget \\| pipes |" in index
    assert "| [`zerodowntime.rollout.thing`](roles/thing.md) | Do the thing |" in index
    assert index.index("## Modules") < index.index("## Roles")
    role = files["roles/thing.md"]
    assert "## Entry point `main` – Do the thing" in role
    assert "- Uses [`thing_x`](#main--parameter-thing_x)." in role
    assert '| <a id="main--parameter-thing_x"></a>`thing_x` | int | no | `0` |  | X. |' in role


def test_render_is_deterministic():
    docs = fake_loader(None)
    shuffled = copy.deepcopy(docs)
    widget = shuffled["plugins"]["module"]["widget"]["doc"]
    widget["options"] = dict(reversed(list(widget["options"].items())))
    assert gen.render_all(docs) == gen.render_all(shuffled)


# -- writing and --check ------------------------------------------------------------------------


def run(capsys, *argv):
    rc = gen.main(list(argv), docs_loader=fake_loader)
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_check_passes_on_a_fresh_tree(tmp_path, capsys):
    out = tmp_path / "ref"
    assert run(capsys, "--out", str(out))[0] == 0
    rc, text = run(capsys, "--check", "--out", str(out))
    assert rc == 0, text
    assert "is current (4 pages)" in text


def test_check_reports_stale_missing_and_extra_files_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "ref"
    assert run(capsys, "--out", str(out))[0] == 0
    # A plugin's docs changed after the last `make docs`: its page is stale.
    widget = out / "modules" / "widget.md"
    widget.write_text(widget.read_text(encoding="utf-8").replace("Manage a widget", "Old text"), encoding="utf-8")
    (out / "roles" / "thing.md").unlink()
    (out / "modules" / "removed_module.md").write_text(gen.MARKER + "\n", encoding="utf-8")
    before = snapshot(out)

    rc, text = run(capsys, "--check", "--out", str(out))

    assert rc == 1
    assert "stale:   %s/modules/widget.md" % gen._shown(out) in text
    assert "missing: %s/roles/thing.md" % gen._shown(out) in text
    assert "extra:   %s/modules/removed_module.md" % gen._shown(out) in text
    assert "gadget.md" not in text
    assert "run `make docs` to update" in text
    assert snapshot(out) == before


def test_write_updates_only_changed_pages_and_removes_generated_leftovers(tmp_path, capsys):
    out = tmp_path / "ref"
    run(capsys, "--out", str(out))
    (out / "modules" / "widget.md").write_text("stale\n", encoding="utf-8")
    (out / "old" / "gone.md").parent.mkdir()
    (out / "old" / "gone.md").write_text(gen.MARKER + "\nold page\n", encoding="utf-8")
    (out / "handwritten.md").write_text("# mine\n", encoding="utf-8")

    rc, text = run(capsys, "--out", str(out))

    assert rc == 0
    assert "4 pages, 1 written, 1 removed" in text
    assert "handwritten.md was not generated by this script; left in place" in text
    assert not (out / "old").exists()
    assert (out / "handwritten.md").exists()
    rc, text = run(capsys, "--check", "--out", str(out))
    assert rc == 1
    assert "extra:   %s/handwritten.md" % gen._shown(out) in text


def test_loader_failure_is_reported(tmp_path, capsys):
    def broken(_root):
        raise gen.GenerationError("ansible-doc gave no documentation for module widget")

    rc = gen.main(["--check", "--out", str(tmp_path)], docs_loader=broken)
    assert rc == 2
    assert "no documentation for module widget" in capsys.readouterr().err
