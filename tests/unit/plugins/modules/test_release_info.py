# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_info's main() in-process on a real temporary layout."""

import io
import os
import tarfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.modules import release_info
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.module_runner import run_main


def archive(tmp_path, version):
    path = str(tmp_path / ("%s.tar.gz" % version))
    data = ("%s\n" % version).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("VERSION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_reports_the_rolled_back_release_and_changes_nothing(tmp_path, capsys):
    root = str(tmp_path / "app")
    for version in ("v1", "v2"):
        manage_release(path=root, version=version, src=archive(tmp_path, version), state="active")
    manage_release(path=root, state="rollback")
    before = sorted(os.listdir(root)), os.readlink(os.path.join(root, "current"))
    code, result = run_main(release_info, {"path": root, "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False
    assert (result["current"], result["previous"], result["rolled_back"]) == ("v1", "v2", ["v2"])
    assert [r["name"] for r in result["releases"]] == ["v2", "v1"]  # v1 ran last (the rollback)
    assert (sorted(os.listdir(root)), os.readlink(os.path.join(root, "current"))) == before


def test_a_missing_path_is_not_an_error_and_a_broken_link_is(tmp_path, capsys):
    code, result = run_main(release_info, {"path": str(tmp_path / "none")}, capsys)
    assert code == 0 and result["exists"] is False and result["releases"] == []
    root = tmp_path / "odd"
    root.mkdir()
    os.symlink("/etc", str(root / "current"))
    code, result = run_main(release_info, {"path": str(root)}, capsys)
    assert code == 1 and result["failed"] is True
    assert "not a release under" in result["msg"]
