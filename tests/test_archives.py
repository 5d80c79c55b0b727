"""Archives unpack the same way with Python's extraction filters (3.11.4+) and without them
(Debian 12's own 3.11.2): the same archives are refused, nothing lands outside the folder."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from autograder.core.archives import HAS_FILTERS, extract_tar

WAYS = [pytest.param(False, id="own-checks")] + (
    [pytest.param(True, id="python-filters")] if HAS_FILTERS else [])


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


HOSTILE = {
    "absolute_path": lambda outside: [_file(str(outside / "abs.txt"))],
    "dot_dot": lambda outside: [_file("../" * 12 + str(outside).lstrip("/") + "/up.txt")],
    "symlink_out_then_write_through": lambda outside: [
        _link("door", str(outside)), _file("door/through.txt")],
    "relative_symlink_out_then_write_through": lambda outside: [
        _link("door", "../" * 12 + str(outside).lstrip("/")), _file("door/through.txt")],
    "hardlink_outside": lambda outside: [_link("hard", str(outside / "victim.txt"),
                                               tarfile.LNKTYPE)],
    "device": lambda outside: [_device("null")],
}


def _unpack(archive: Path, into: Path, use_filters: bool) -> str:
    """"refused" or "unpacked"."""
    into.mkdir()
    with tarfile.open(archive) as tar:
        try:
            extract_tar(tar, into, "data", use_filters=use_filters)
        except tarfile.TarError:
            return "refused"
    return "unpacked"


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_archive_writes_nothing_outside_under_the_data_policy(attack, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep")
    archive = _tar(tmp_path / "a.tar", HOSTILE[attack](outside))
    verdicts = {}
    for use_filters in [False] + [True] * HAS_FILTERS:
        verdicts[use_filters] = _unpack(archive, tmp_path / f"into-{use_filters}", use_filters)
        assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"], use_filters
        assert (outside / "victim.txt").read_text() == "keep"
    assert len(set(verdicts.values())) == 1, f"the two ways disagree: {verdicts}"
    if attack != "absolute_path":  # that one is unpacked inside, "/x/y" as into/x/y
        assert verdicts[False] == "refused"


@pytest.mark.parametrize("use_filters", WAYS)
def test_the_tar_policy_keeps_links_but_nothing_lands_outside(use_filters, tmp_path):
    outside, into = tmp_path / "outside", tmp_path / "into"
    outside.mkdir()
    into.mkdir()
    archive = _tar(tmp_path / "a.tar", [_file("sub/ok.txt", b"ok", 0o4777),
                                        _link("sub/pointer", "/etc/hostname")])
    with tarfile.open(archive) as tar:
        extract_tar(tar, into, "tar", use_filters=use_filters)
    assert (into / "sub" / "ok.txt").read_bytes() == b"ok"
    assert os.readlink(into / "sub" / "pointer") == "/etc/hostname"  # kept, as the grader sees it
    mode = stat.S_IMODE((into / "sub" / "ok.txt").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_IWGRP | stat.S_IWOTH), oct(mode)
    escape = _tar(tmp_path / "b.tar", [_file("../../escaped.txt")])
    with tarfile.open(escape) as tar, pytest.raises(tarfile.TarError):
        extract_tar(tar, into, "tar", use_filters=use_filters)
    assert not (tmp_path / "escaped.txt").exists()


def test_both_ways_unpack_an_honest_archive_the_same(tmp_path):
    archive = _tar(tmp_path / "a.tar", [_file("train/cat/1.png", b"png1", 0o600),
                                        _file("train/dog/2.png", b"png2", 0o755),
                                        _link("test", "train")])
    unpacked = {}
    for use_filters in [False] + [True] * HAS_FILTERS:
        into = tmp_path / f"into-{use_filters}"
        into.mkdir()
        with tarfile.open(archive) as tar:
            extract_tar(tar, into, "data", use_filters=use_filters)
        unpacked[use_filters] = sorted(
            (str(p.relative_to(into)), p.is_symlink(), p.read_bytes() if p.is_file() else None,
             stat.S_IMODE(p.lstat().st_mode) if not p.is_symlink() else None)
            for p in into.rglob("*"))
    assert unpacked[False], "nothing was unpacked"
    assert len(set(map(tuple, unpacked.values()))) == 1, unpacked
