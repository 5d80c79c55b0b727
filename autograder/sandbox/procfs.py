"""One field of a process's ``/proc/<pid>/status``, for the trusted side's checks on workers
(their seccomp mode) and slot uids (their processes). Imports nothing of the grader."""

from __future__ import annotations


def status_number(pid: int | str, field: str) -> int | None:
    """The first number of the ``field:`` line of process ``pid``'s status (``Uid``: the real
    uid; ``Seccomp``: 0 none, 1 strict, 2 filter), None if the process or the line is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
