"""Unpacking tar archives safely on every Python that ``requires-python`` admits.

Python 3.11.4 added extraction filters (``extractall(filter="data")``, PEP 706); Debian 12's
own ``python3`` is 3.11.2 and has none, so ``filter=`` raises ``TypeError`` there. On such an
interpreter :func:`extract_tar` checks every member itself, as the filter would, before a
byte is written. Both paths refuse the same archives (tests/test_archives.py runs each).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Literal

Policy = Literal["data", "tar"]
HAS_FILTERS = hasattr(tarfile, "data_filter")  # 3.11.4+, 3.12+


class UnsafeArchive(tarfile.TarError):
    """A member that would land outside the folder, or a kind of file the policy refuses."""


def extract_tar(tar: tarfile.TarFile, into: Path, policy: Policy = "data",
                use_filters: bool = HAS_FILTERS) -> None:
    """Unpack ``tar`` into ``into`` under ``policy``.

    ``"data"``: regular files and folders only, plus links that stay inside ``into``; no
    devices, owners or special mode bits. ``"tar"``: links are kept as they are, but no member
    lands outside ``into`` and no setuid, setgid or group/other write bit survives.
    """
    if use_filters:
        tar.extractall(into, filter=policy)
        return
    # checked one by one just before each is written, as the filters do, so a link an earlier
    # member made is seen when a later one would be written through it
    members = (_checked(member, Path(into), policy) for member in tar.getmembers())
    tar.extractall(into, members=members, numeric_owner=True)


def _checked(member: tarfile.TarInfo, into: Path, policy: Policy) -> tarfile.TarInfo:
    """The member, made safe to extract under ``policy``, or :class:`UnsafeArchive`."""
    root = os.path.realpath(into)
    name = member.name.lstrip("/" + os.sep)  # "/etc/x" lands in into/etc/x, as with the filters
    target = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, target]) != root:
        raise UnsafeArchive(f"{member.name!r} would be extracted outside the destination")
    if member.isdev() or (member.isfifo() and policy == "data"):
        raise UnsafeArchive(f"{member.name!r} is a special file")
    if member.islnk() or (member.issym() and policy == "data"):
        _check_link(member, root, target, policy)
    member.name = name
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    if not member.issym():  # no setuid, setgid, sticky, group or other write bit
        member.mode &= 0o755
        if policy == "data" and member.isreg():
            member.mode |= 0o600  # the owner can read and write what it unpacked
    return member


def _check_link(member: tarfile.TarInfo, root: str, target: str, policy: Policy) -> None:
    if os.path.isabs(member.linkname) and policy == "data":
        raise UnsafeArchive(f"{member.name!r} links to an absolute path")
    base = root if member.islnk() else os.path.dirname(target)
    pointed = os.path.realpath(os.path.join(base, member.linkname))
    if os.path.commonpath([root, pointed]) != root:
        raise UnsafeArchive(f"{member.name!r} links outside the destination")
