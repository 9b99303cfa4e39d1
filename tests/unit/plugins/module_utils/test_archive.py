# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive member checks and extraction (tar and zip), without Ansible."""

import io
import os
import stat
import tarfile
import zipfile

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive import (
    OpenArchive,
    UnsafeArchiveError,
    UnsupportedArchiveError,
    archive_format,
    normalize_name,
    resolve_inside,
    sniff_format,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError

# --- builders --------------------------------------------------------------------------------------


def make_tar(entries, compress=True):
    """entries: (name, kind, payload) with kind file|dir|sym|hard|chr|fifo; payload = bytes or link target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                data = payload or b""
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info)
    buf.seek(0)
    return buf


def make_zip(entries):
    """entries: (name, unix_mode or None for a DOS entry, payload bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, mode, payload in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            if mode is None:  # as written on Windows: DOS attributes only, no Unix mode
                info.create_system = 0
                info.external_attr = 0x20
            else:
                info.create_system = 3
                info.external_attr = (mode & 0xFFFF) << 16
            zf.writestr(info, payload)
    buf.seek(0)
    return buf


def check(fileobj, fmt):
    with OpenArchive(fileobj, fmt) as archive:
        return archive.members


def extract(fileobj, fmt, dest):
    dest.mkdir()
    with OpenArchive(fileobj, fmt) as archive:
        archive.extract(str(dest))
    return dest


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("a/b", "a/b"), ("./a//b/", "a/b"), (".", ""), ("./", ""), ("a/./b", "a/b"), ("v+1.0-rc_2", "v+1.0-rc_2")],
)
def test_normalize_name_accepts(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw", ["/etc/passwd", "../x", "a/../../x", "a/..", "..", "a/../b", "x\x00y"])
def test_normalize_name_refuses(raw):
    with pytest.raises(UnsafeArchiveError):
        normalize_name(raw)


def test_errors_are_rollout_errors():
    assert issubclass(UnsafeArchiveError, RolloutError)
    assert issubclass(UnsupportedArchiveError, RolloutError)


@pytest.mark.parametrize(
    "name, fmt", [("a.tar.gz", "tar"), ("A.TGZ", "tar"), ("x.tar", "tar"), ("x.zip", "zip"), ("x.rar", None)]
)
def test_archive_format(name, fmt):
    assert archive_format(name) == fmt


def test_sniff_format_restores_position():
    tgz = make_tar([("a", "file", b"1")])
    assert sniff_format(tgz) == "tar" and tgz.tell() == 0
    assert sniff_format(make_tar([("a", "file", b"1")], compress=False)) == "tar"
    assert sniff_format(make_zip([("a", None, b"1")])) == "zip"
    assert sniff_format(io.BytesIO(b"hello world")) is None


# --- link resolution -------------------------------------------------------------------------------


def test_resolve_inside_follows_chains():
    links = {"r": ".", "a": "b", "b": "sub"}
    assert resolve_inside([], "a/x", links) == ["sub", "x"]
    assert resolve_inside(["d"], "../r/sub", links) == ["sub"]
    with pytest.raises(UnsafeArchiveError):
        resolve_inside([], "r/..", links)  # lexically '.', physically the parent of the release
    with pytest.raises(UnsafeArchiveError, match="deeper"):
        resolve_inside([], "p", {"p": "q", "q": "p"})


# --- tar -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries, reason",
    [
        ([("../evil", "file", b"x")], "'..' component"),
        ([("a/../../evil", "file", b"x")], "'..' component"),
        ([("/etc/evil", "file", b"x")], "absolute path"),
        ([("l", "sym", "/etc/passwd")], "outside the release"),
        ([("l", "sym", "../outside")], "outside the release"),
        ([("sub/l", "sym", "../../outside")], "outside the release"),
        # chain: r -> . is fine on its own, but r/.. is the parent of the release
        ([("r", "sym", "."), ("s", "sym", "r/..")], "outside the release"),
        # chain through two links: a -> b -> ..
        ([("a", "sym", "b"), ("b", "sym", "..")], "outside the release"),
        ([("sub/a", "sym", "../b"), ("b", "sym", "c/../.."), ("c", "dir", None)], "outside the release"),
        ([("p", "sym", "q"), ("q", "sym", "p")], "deeper"),
        ([("h", "hard", "../../etc/passwd")], "outside the release"),
        ([("h", "hard", "/etc/passwd")], "outside the release"),
        ([("h", "hard", "etc/passwd")], "not a regular file stored earlier"),
        ([("h", "hard", "f"), ("f", "file", b"late")], "not a regular file stored earlier"),
        ([("l", "sym", "f"), ("h", "hard", "l")], "not a regular file stored earlier"),
        ([("dev/null", "chr", None)], "device file"),
        ([("pipe", "fifo", None)], "FIFO"),
        ([("lnk", "sym", "sub"), ("sub", "dir", None), ("lnk/file", "file", b"x")], "beneath the symbolic link"),
        ([("f", "file", b"1"), ("f", "file", b"2")], "more than once"),
        ([("d", "dir", None), ("d", "sym", ".")], "more than once"),
    ],
)
def test_tar_refused(entries, reason):
    with pytest.raises(UnsafeArchiveError, match=reason):
        check(make_tar(entries), "tar")


def test_tar_refused_before_anything_is_written(tmp_path):
    tgz = make_tar([("ok.txt", "file", b"fine"), ("../escape.txt", "file", b"evil")])
    with pytest.raises(UnsafeArchiveError):
        OpenArchive(tgz, "tar")
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape.txt").exists()


def test_tar_extracts_files_dirs_and_internal_links(tmp_path):
    tgz = make_tar(
        [
            ("./", "dir", None),
            ("./VERSION", "file", b"v1\n"),
            ("./app/", "dir", None),
            ("./app/main.py", "file", b"print(1)\n"),
            ("./app/same.py", "hard", "./app/main.py"),
            ("./latest", "sym", "app/main.py"),
            ("./app/up", "sym", "../VERSION"),
        ]
    )
    dest = extract(tgz, "tar", tmp_path / "rel")
    assert (dest / "VERSION").read_bytes() == b"v1\n"
    assert os.readlink(str(dest / "latest")) == "app/main.py"
    assert (dest / "latest").read_bytes() == b"print(1)\n"
    assert (dest / "app" / "up").read_bytes() == b"v1\n"
    assert os.stat(str(dest / "app" / "same.py")).st_ino == os.stat(str(dest / "app" / "main.py")).st_ino
    assert os.stat(str(dest / "VERSION")).st_mtime == 1700000000


def test_tar_drops_special_mode_bits_and_ownership(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("suid")
        info.size, info.mode, info.uid, info.gid = 1, 0o4755, 12345, 12345
        tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    dest = extract(buf, "tar", tmp_path / "rel")
    st = os.stat(str(dest / "suid"))
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_uid == os.getuid()


def test_tar_read_only_directory_is_filled_before_its_mode_is_set(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("ro")
        info.type, info.mode = tarfile.DIRTYPE, 0o555
        tar.addfile(info)
        info = tarfile.TarInfo("ro/f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    dest = extract(buf, "tar", tmp_path / "rel")
    assert (dest / "ro" / "f").read_bytes() == b"x"
    assert stat.S_IMODE(os.stat(str(dest / "ro")).st_mode) == 0o555
    os.chmod(str(dest / "ro"), 0o755)


def test_not_an_archive():
    with pytest.raises(UnsupportedArchiveError, match="cannot read"):
        OpenArchive(io.BytesIO(b"definitely not a tar file" * 40), "tar")
    with pytest.raises(UnsupportedArchiveError):
        OpenArchive(io.BytesIO(b"PK\x03\x04 broken"), "zip")


# --- zip -------------------------------------------------------------------------------------------

S_LNK = stat.S_IFLNK | 0o777


@pytest.mark.parametrize(
    "entries, reason",
    [
        ([("../evil", None, b"x")], "'..' component"),
        ([("/abs/evil", None, b"x")], "absolute path"),
        ([("l", S_LNK, b"../../etc")], "outside the release"),
        ([("l", S_LNK, b"/etc/passwd")], "outside the release"),
        ([("r", S_LNK, b"."), ("s", S_LNK, b"r/..")], "outside the release"),
        ([("dev", stat.S_IFCHR | 0o600, b"")], "device file"),
        ([("blk", stat.S_IFBLK | 0o600, b"")], "device file"),
        ([("pipe", stat.S_IFIFO | 0o600, b"")], "FIFO"),
        ([("l", S_LNK, b"d"), ("l/f", None, b"x")], "beneath the symbolic link"),
    ],
)
def test_zip_refused(entries, reason):
    with pytest.raises(UnsafeArchiveError, match=reason):
        check(make_zip(entries), "zip")


def test_zip_encrypted_member_refused():
    buf = make_zip([("secret", None, b"x")])
    data = bytearray(buf.getvalue())
    # set the "encrypted" flag bit in both the local header and the central directory entry
    data[6] |= 1
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 1
    with pytest.raises(UnsafeArchiveError, match="encrypted"):
        check(io.BytesIO(bytes(data)), "zip")


def test_zip_extracts_with_modes_and_symlinks(tmp_path):
    z = make_zip(
        [
            ("bin/", stat.S_IFDIR | 0o755, b""),
            ("bin/run", stat.S_IFREG | 0o755, b"#!/bin/sh\n"),
            ("VERSION", None, b"v3\n"),
            ("run", S_LNK, b"bin/run"),
        ]
    )
    dest = extract(z, "zip", tmp_path / "rel")
    assert (dest / "VERSION").read_bytes() == b"v3\n"
    assert stat.S_IMODE(os.stat(str(dest / "VERSION")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(dest / "bin" / "run")).st_mode) == 0o755
    assert os.readlink(str(dest / "run")) == "bin/run"
