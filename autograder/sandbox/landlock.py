"""Landlock for the uid level: the ruleset a worker applies to itself before any student code.

Runs inside the worker (and in the launcher's probe), so it imports only the stdlib and
py-landlock (a small, typed, dependency-free ctypes binding of the three syscalls that knows
ABIs 1 to 7: files, TCP ports, signal and abstract-socket scopes). The trusted side decides
the rules (:mod:`.uid`) and hands them over as a JSON file in a folder the worker cannot write.

A ruleset cannot be lifted once applied, and every process the worker starts inherits it. What
Landlock does not handle stays as the uid leaves it: UDP, and paths reached through file
descriptors opened before the ruleset (the worker's pipes only).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

RULES_FORMAT = 1


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


def abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is absent, off or refused."""
    try:
        from py_landlock import LandlockError, get_abi_version
    except ImportError:
        return 0
    try:
        return int(get_abi_version())
    except (LandlockError, OSError):
        return 0


def capabilities(version: int) -> str:
    """What a ruleset enforces at ABI ``version``, in words (for results and logs)."""
    if version <= 0:
        return "no Landlock"
    parts = ["files"]
    if version >= 4:
        parts.append("TCP")
    if version >= 6:
        parts.append("signals")
    return f"Landlock ABI {version}: {', '.join(parts)}"


def apply(rules: Rules) -> int:
    """Confine this process (and every process it starts) to ``rules``; returns the ABI.

    Call it from the only thread there is: Landlock restricts the calling thread and the
    threads and processes it creates later. Raises ``py_landlock.LandlockError`` (or OSError)
    if the kernel refuses; the worker then exits instead of running unconfined.
    """
    from py_landlock import AccessFs, Landlock

    read_file = AccessFs.READ_FILE | AccessFs.EXECUTE
    read_dir = read_file | AccessFs.READ_DIR
    write_dir = read_dir | (
        AccessFs.WRITE_FILE | AccessFs.TRUNCATE | AccessFs.MAKE_REG | AccessFs.MAKE_DIR
        | AccessFs.MAKE_SYM | AccessFs.MAKE_FIFO | AccessFs.MAKE_SOCK | AccessFs.REMOVE_FILE
        | AccessFs.REMOVE_DIR | AccessFs.REFER
    )
    device = AccessFs.READ_FILE | AccessFs.WRITE_FILE | AccessFs.TRUNCATE | AccessFs.IOCTL_DEV
    ruleset = Landlock(strict=False)  # rights the kernel lacks are dropped, not an error
    for paths, on_dir, on_file in ((rules.read, read_dir, read_file),
                                   (rules.list_only, AccessFs.READ_DIR, None),
                                   (rules.write, write_dir, None),
                                   (rules.devices, None, device)):
        for path in paths:
            access = _access_for(path, on_dir, on_file)
            if access is not None:
                ruleset.add_path_rule(path, access=access)
    ruleset.apply()  # TCP bind/connect and the signal/abstract-socket scopes: all refused
    return int(ruleset.abi_version)


def _access_for(path: str, on_dir: object, on_file: object) -> object | None:
    """The rights for ``path`` by what it is (a folder right on a file is EINVAL)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # gone or unreachable: nothing to allow
    return on_dir if stat.S_ISDIR(mode) else on_file
