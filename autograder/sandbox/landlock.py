"""Landlock for the uid level: the ruleset a worker applies to itself before any student code.

Runs inside the worker (and in the launcher's probe), so it imports only the stdlib: the three
Landlock system calls through ctypes, on the libc already loaded into the interpreter. (The
PyPI binding py-landlock was tried first: it finds libc by running ``ldconfig`` in a
subprocess on first use, which fails inside the sandbox once the worker's uid is at its
process limit, and the worker then refuses to start.) The trusted side decides the rules
(:mod:`.uid`) and hands them over as a JSON file in a folder the worker cannot write.

A ruleset cannot be lifted once applied, and every process the worker starts inherits it.
ABI 1 handles files, 2 adds cross-folder links and renames, 3 truncation, 4 TCP bind and
connect, 5 device ioctls, 6 signals and abstract Unix sockets outside the domain. What
Landlock does not handle stays as the uid leaves it: UDP, and file descriptors opened before
the ruleset (the worker's pipes only).
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

RULES_FORMAT = 1
# The same numbers on every architecture (the syscalls are newer than the unified table).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# File-system rights (bits of landlock_ruleset_attr.handled_access_fs).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # valid on a file
_TCP = 0b11  # bind, connect (ABI 4)
_SCOPES = 0b11  # abstract Unix sockets, signals (ABI 6)


@dataclass(frozen=True)
class Rules:
    """What a confined worker may touch; everything else on the file system is refused.

    ``read``: files and folders readable (and executable) beneath. ``list_only``: folders
    whose entries may be listed but not read (site-packages, so that blocked packages are
    names without contents). ``write``: folders with full access beneath (the worker's home
    and tmp). ``devices``: device nodes opened for reading and writing (with ioctl).
    """

    read: tuple[str, ...] = ()
    list_only: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def dump(self, path: Path) -> None:
        """Write the rules as JSON (the trusted side, into a folder the worker cannot write)."""
        path.write_text(json.dumps({"format": RULES_FORMAT, **asdict(self)}), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Rules:
        """Read rules written by :meth:`dump`; anything else is refused."""
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        keys = {"format", "read", "list_only", "write", "devices"}
        if type(raw) is not dict or set(raw) != keys or raw["format"] != RULES_FORMAT:
            raise ValueError(f"{path}: not a Landlock rules file of format {RULES_FORMAT}")
        lists = {key: raw[key] for key in keys - {"format"}}
        if not all(type(v) is list and all(type(p) is str for p in v) for v in lists.values()):
            raise ValueError(f"{path}: every rule list must be a list of paths")
        return cls(**{key: tuple(value) for key, value in lists.items()})


class LandlockError(OSError):
    """The kernel refused a Landlock call (the message names it)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in <linux/landlock.h>
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)  # the libc this interpreter already runs on
    libc.syscall.restype = ctypes.c_long
    return libc


def _call(libc: ctypes.CDLL, what: str, *args: object) -> int:
    result = libc.syscall(*args)
    if result < 0:
        errno = ctypes.get_errno()
        raise LandlockError(errno, f"{what}: {os.strerror(errno)}")
    return int(result)


def abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is absent, off or refused."""
    try:
        return _call(_libc(), "landlock_create_ruleset", ctypes.c_long(_CREATE_RULESET),
                     None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (LandlockError, OSError, AttributeError):
        return 0


def capabilities(version: int) -> str:
    """What a ruleset enforces at ABI ``version``, in words (for results and logs)."""
    if version <= 0:
        return "no Landlock"
    parts = ["files"] + (["TCP"] if version >= 4 else []) + (["signals"] if version >= 6 else [])
    return f"Landlock ABI {version}: {', '.join(parts)}"


def _handled_fs(version: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= version)]


def apply(rules: Rules) -> int:
    """Confine this process (and every process it starts) to ``rules``; returns the ABI.

    Call it from the only thread there is: Landlock restricts the calling thread and the
    threads and processes it creates later. Raises LandlockError if the kernel refuses; the
    worker then exits instead of running unconfined.
    """
    libc = _libc()
    version = abi()
    if version < 1:
        raise LandlockError(0, "this kernel has no usable Landlock")
    handled = _handled_fs(version)
    attr = _RulesetAttr(handled, _TCP if version >= 4 else 0, _SCOPES if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24  # the fields this ABI knows
    ruleset = _call(libc, "landlock_create_ruleset", ctypes.c_long(_CREATE_RULESET),
                    ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        read_dir = READ_FILE | EXECUTE | READ_DIR
        write_dir = read_dir | WRITE_FILE | TRUNCATE | MAKE_REG | MAKE_DIR | MAKE_SYM \
            | MAKE_FIFO | MAKE_SOCK | REMOVE_FILE | REMOVE_DIR | REFER
        for paths, on_dir, on_file in ((rules.read, read_dir, READ_FILE | EXECUTE),
                                       (rules.list_only, READ_DIR, 0),
                                       (rules.write, write_dir, 0),
                                       (rules.devices, 0, READ_FILE | WRITE_FILE | TRUNCATE
                                        | IOCTL_DEV)):
            for path in paths:
                _add_path(libc, ruleset, path, on_dir & handled, on_file & handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _call(libc, "landlock_restrict_self", ctypes.c_long(_RESTRICT_SELF),
              ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return version


def _add_path(libc: ctypes.CDLL, ruleset: int, path: str, on_dir: int, on_file: int) -> None:
    """Allow ``on_dir`` beneath a folder, or ``on_file`` on a file (a folder right on a file
    is EINVAL); a path that is gone or unreachable gets nothing."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        access = on_dir if stat.S_ISDIR(os.fstat(fd).st_mode) else on_file & _FILE_RIGHTS
        if access:
            rule = _PathBeneathAttr(access, fd)
            _call(libc, f"landlock_add_rule({path})", ctypes.c_long(_ADD_RULE),
                  ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                  ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)
