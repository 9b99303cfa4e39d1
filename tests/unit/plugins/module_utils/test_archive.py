# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive member checks and extraction (tar and zip), without Ansible."""

import io
import os
import stat
import tarfile
import zipfile

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import (
    UnsafeArchiveError,
    UnsupportedArchiveError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.formats import archive_format, sniff_format
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.members import (
    normalize_name,
    resolve_inside,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.reader import OpenArchive
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


# --- modes (issue #13, item 5) ---------------------------------------------------------------------


def _tar_with_modes(entries):
    """entries: (name, 'dir'|'file', mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    return buf


MODE_CASES = [
    ("tmp", "dir", 0o1777, 0o755),  # world-writable + sticky: the sticky bit would be all that protects it
    ("shared", "dir", 0o2775, 0o755),  # group-writable + setgid
    ("private", "dir", 0o700, 0o700),
    ("tmp/world.txt", "file", 0o666, 0o644),
    ("group.txt", "file", 0o664, 0o644),
    ("suid-world", "file", 0o4777, 0o755),
    ("sgid", "file", 0o2755, 0o755),
    ("secret", "file", 0o640, 0o640),
]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_group_and_other_write_setid_and_sticky_bits_are_dropped(tmp_path, fmt):
    if fmt == "tar":
        archive = _tar_with_modes([(name, kind, mode) for name, kind, mode, _want in MODE_CASES])
    else:
        archive = make_zip(
            [
                (name + "/" if kind == "dir" else name, (stat.S_IFDIR if kind == "dir" else stat.S_IFREG) | mode, b"x")
                for name, kind, mode, _want in MODE_CASES
            ]
        )
    dest = extract(archive, fmt, tmp_path / "rel")
    for name, _kind, _mode, want in MODE_CASES:
        st = os.lstat(str(dest / name))
        assert stat.S_IMODE(st.st_mode) == want, (name, oct(st.st_mode))
        assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)


# --- damaged archives ------------------------------------------------------------------------------

PAYLOAD = b"".join(b"line %05d of a release file that compresses well\n" % i for i in range(4000))


def _zip_bytes(compression=zipfile.ZIP_DEFLATED, link=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr("VERSION", b"v1\n")
        if link:
            info = zipfile.ZipInfo("link", date_time=(2024, 1, 2, 3, 4, 6))
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, b"app/" * 200 + b"data.bin")
        else:
            zf.writestr("app/data.bin", PAYLOAD)
        zf.writestr("z-last.txt", b"last\n")
    return bytearray(buf.getvalue())


def _data_offset(data, name):
    """Offset of the first byte of ``name``'s data in a zip (after its local header)."""
    at = data.find(b"PK\x03\x04")
    while at >= 0:
        name_len, extra_len = (
            int.from_bytes(data[at + 26 : at + 28], "little"),
            int.from_bytes(data[at + 28 : at + 30], "little"),
        )
        if bytes(data[at + 30 : at + 30 + name_len]) == name.encode():
            return at, at + 30 + name_len + extra_len
        at = data.find(b"PK\x03\x04", at + 4)
    raise AssertionError(name)


def _tgz_bytes(names=("f0", "f1", "f2"), compress=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(PAYLOAD), 0o644
            tar.addfile(info, io.BytesIO(PAYLOAD))
    return bytearray(buf.getvalue())


def bad_deflate():
    data = _zip_bytes()
    start = _data_offset(data, "app/data.bin")[1]
    data[start + 40 : start + 60] = b"\xff" * 20
    return data, "zip", "app/data.bin"


def bad_crc():
    data = _zip_bytes(compression=zipfile.ZIP_STORED)
    start = _data_offset(data, "app/data.bin")[1]
    data[start + 1000] ^= 0xFF
    return data, "zip", "app/data.bin"


def bad_local_header():
    data = _zip_bytes()
    header = _data_offset(data, "app/data.bin")[0]
    data[header : header + 4] = b"XX\x03\x04"
    return data, "zip", "app/data.bin"


def bad_symlink_data():
    data = _zip_bytes(link=True)
    start = _data_offset(data, "link")[1]
    data[start : start + 8] = b"\xff" * 8
    return data, "zip", "link"


def truncated_tgz():
    data = _tgz_bytes()
    return data[: len(data) // 2], "tar", None


def bad_gzip_stream():
    data = _tgz_bytes()
    data[-8] ^= 0xFF  # the gzip trailer's CRC: tarfile alone never reads it
    return data, "tar", None


def damaged_tar_header():
    data = _tgz_bytes(compress=False)
    second = 512 + -(-len(PAYLOAD) // 512) * 512
    data[second + 148 : second + 156] = b"1234567\0"  # header checksum: tarfile takes it for the end of the archive
    return data, "tar", "f0"


def truncated_tar_member():
    data = _tgz_bytes(names=("f0",), compress=False)
    return data[: 512 + 1000], "tar", None


CORRUPT = [bad_deflate, bad_crc, bad_local_header, bad_symlink_data, truncated_tgz, bad_gzip_stream, damaged_tar_header]
CORRUPT.append(truncated_tar_member)


@pytest.mark.parametrize("build", CORRUPT, ids=[f.__name__ for f in CORRUPT])
def test_damaged_archive_fails_cleanly_naming_member_and_archive(tmp_path, build):
    data, fmt, member = build()
    path = tmp_path / ("damaged." + ("zip" if fmt == "zip" else "tar.gz"))
    path.write_bytes(bytes(data))
    dest = tmp_path / "rel"
    dest.mkdir()
    with pytest.raises(RolloutError) as info, open(str(path), "rb") as handle, OpenArchive(handle, fmt) as archive:
        archive.extract(str(dest))
    msg = info.value.msg
    assert str(path) in msg, msg
    if member is not None:
        assert repr(member) in msg, msg
    assert "\n" not in msg and "Traceback" not in msg
    assert list(dest.iterdir()) == []  # nothing of it is left behind


def test_bytes_after_a_complete_gzip_stream_are_ignored_as_gzip_does(tmp_path):
    data = _tgz_bytes(names=("f0",)) + b"trailing bytes that are not gzip"
    dest = tmp_path / "rel"
    dest.mkdir()
    with OpenArchive(io.BytesIO(bytes(data)), "tar") as archive:
        archive.extract(str(dest))
    assert (dest / "f0").read_bytes() == PAYLOAD


def test_damaged_zip_through_manage_release_leaves_nothing(tmp_path):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release

    root = tmp_path / "app"
    good = tmp_path / "v1.zip"
    good.write_bytes(bytes(_zip_bytes()))
    manage_release(str(root), state="active", version="v1", src=str(good))
    for build in (bad_deflate, bad_crc, bad_local_header):
        damaged = tmp_path / ("%s.zip" % build.__name__)
        damaged.write_bytes(bytes(build()[0]))
        with pytest.raises(RolloutError, match="app/data.bin") as info:
            manage_release(str(root), state="active", version="v2", src=str(damaged))
        assert str(damaged) in info.value.msg
        assert sorted(os.listdir(str(root / "releases"))) == ["v1"]
        assert os.listdir(str(root / ".rollout-tmp")) == []
        assert os.readlink(str(root / "current")) == "releases/v1"


# --- member count ----------------------------------------------------------------------------------


def _many(n, fmt):
    if fmt == "tar":
        return make_tar([("d%d/" % i, "dir", None) for i in range(n)])
    return make_zip([("d%d/" % i, stat.S_IFDIR | 0o755, b"") for i in range(n)])


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_max_members_is_enforced_before_extraction(tmp_path, fmt):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import ArchiveLimitError
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.limits import (
        DEFAULT_MAX_MEMBERS,
        archive_limits,
    )

    with OpenArchive(_many(10, fmt), fmt, max_members=10) as archive:
        assert len(archive.members) == 10
    with pytest.raises(ArchiveLimitError, match=r"max_members allows \(10\)"):
        OpenArchive(_many(11, fmt), fmt, max_members=10)
    with archive_limits(max_members=10), pytest.raises(ArchiveLimitError, match="max_members"):
        OpenArchive(_many(11, fmt), fmt)
    assert OpenArchive(_many(11, fmt), fmt).max_members == DEFAULT_MAX_MEMBERS == 100000
    with pytest.raises(RolloutError, match="max_members"):
        OpenArchive(_many(1, fmt), fmt, max_members=0)


def _zip64_of_empty_dirs(count):
    """A valid zip of ``count`` empty directories, written directly (zipfile takes minutes for 100,001)."""
    local, central = io.BytesIO(), io.BytesIO()
    for i in range(count):
        name = b"d%d/" % i
        offset = local.tell()
        local.write(b"PK\x03\x04" + (20).to_bytes(2, "little") + bytes(20) + len(name).to_bytes(2, "little") + bytes(2))
        local.write(name)
        central.write(
            b"PK\x01\x02"
            + ((3 << 8) | 20).to_bytes(2, "little")
            + (20).to_bytes(2, "little")
            + bytes(20)
            + len(name).to_bytes(2, "little")
            + bytes(8)
            + ((stat.S_IFDIR | 0o755) << 16 | 0x10).to_bytes(4, "little")
            + offset.to_bytes(4, "little")
            + name
        )
    cd_offset, cd = local.tell(), central.getvalue()
    z64_offset = cd_offset + len(cd)
    z64 = (
        b"PK\x06\x06"
        + (44).to_bytes(8, "little")
        + (45).to_bytes(2, "little") * 2
        + bytes(8)
        + count.to_bytes(8, "little") * 2
        + len(cd).to_bytes(8, "little")
        + cd_offset.to_bytes(8, "little")
    )
    locator = b"PK\x06\x07" + bytes(4) + z64_offset.to_bytes(8, "little") + (1).to_bytes(4, "little")
    eocd = b"PK\x05\x06" + bytes(4) + b"\xff\xff" * 2 + b"\xff\xff\xff\xff" * 2 + bytes(2)
    return io.BytesIO(local.getvalue() + cd + z64 + locator + eocd)


def test_default_member_limit_refuses_100001_members():
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import ArchiveLimitError
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.formats import zip_declared_members

    small = _zip64_of_empty_dirs(3)
    with zipfile.ZipFile(small) as zf:  # the builder writes what zipfile reads
        assert [i.filename for i in zf.infolist()] == ["d0/", "d1/", "d2/"]
    small.seek(0)
    assert zip_declared_members(small) == 3 and small.tell() == 0
    with pytest.raises(ArchiveLimitError, match=r"has 100001 members, more than max_members allows \(100000\)"):
        OpenArchive(_zip64_of_empty_dirs(100001), "zip")


# --- space and inodes ------------------------------------------------------------------------------


class FakeStatvfs:
    def __init__(self, free_bytes, total_bytes, files=0, favail=0):
        self.f_frsize = self.f_bsize = 4096
        self.f_bavail = free_bytes // 4096
        self.f_blocks = total_bytes // 4096
        self.f_files, self.f_favail, self.f_ffree = files, favail, favail


def test_size_estimate_counts_a_block_and_an_inode_per_member():
    files = [("VERSION", "file", b"v3\n"), ("a/b.txt", "file", b"y" * 1000), ("a/c/empty", "file", b"")]
    with OpenArchive(make_tar(files), "tar") as archive:
        # VERSION, a, a/b.txt, a/c, a/c/empty: five inodes and blocks, plus one data block each for two files
        assert archive.space_needed(4096) == (7 * 4096, 5)
        assert archive.space_needed(1024) == (5 * 1024 + 1024 + 1024, 5)
        assert archive.data_size() == 7 * 4096


def test_twenty_thousand_directories_do_not_pass_min_free_space(tmp_path, monkeypatch):
    """A ~100 KB archive of 20,000 directories takes ~80 MB: the old estimate (file bytes only) let it pass."""
    from ansible_collections.zerodowntime.rollout.plugins.module_utils import _release

    root = tmp_path / "app"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(20000):
            info = tarfile.TarInfo("d%05d" % i)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    src = tmp_path / "dirs.tar.gz"
    src.write_bytes(buf.getvalue())
    assert src.stat().st_size < 200 * 1024
    real = os.statvfs

    def statvfs(path):
        if path == str(root):  # 50 MiB free of 1 GiB, plenty of inodes
            return FakeStatvfs(50 * 2**20, 2**30, files=10**6, favail=10**6)
        return real(path)

    monkeypatch.setattr(_release.os, "statvfs", statvfs)
    with pytest.raises(RolloutError, match="not enough disk space") as info:
        _release.manage_release(str(root), state="present", version="v1", src=str(src), min_free_space="10M")
    assert info.value.details["needed"] >= 20000 * 4096
    assert not os.path.exists(str(root / "releases" / "v1"))
    tmp = str(root / ".rollout-tmp")
    assert not os.path.exists(tmp) or os.listdir(tmp) == []


def test_too_few_inodes_is_refused_before_the_first_write(tmp_path, monkeypatch):
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive import limits
    from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import ArchiveLimitError

    dest = tmp_path / "rel"
    dest.mkdir()
    monkeypatch.setattr(limits.os, "statvfs", lambda path: FakeStatvfs(2**30, 2**31, files=10000, favail=250))
    with OpenArchive(_many(300, "tar"), "tar") as archive:
        with pytest.raises(ArchiveLimitError, match="needs 300 .*has 250 free"):
            archive.extract(str(dest))
        assert list(dest.iterdir()) == []
        # a filesystem that reports no inode count (btrfs) allocates them on demand
        monkeypatch.setattr(limits.os, "statvfs", lambda path: FakeStatvfs(2**30, 2**31, files=0, favail=0))
        archive.extract(str(dest))
    assert len(list(dest.iterdir())) == 300


def test_too_few_inodes_on_a_real_filesystem(tmp_path):
    """The same on a tmpfs with 200 inodes: refused up front, not by ENOSPC half way through."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,nr_inodes=200", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.decode(errors="replace").strip())
    try:
        dest = mnt / "rel"
        dest.mkdir()
        with OpenArchive(_many(300, "tar"), "tar") as archive, pytest.raises(RolloutError, match="inodes"):
            archive.extract(str(dest))
        assert list(dest.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
