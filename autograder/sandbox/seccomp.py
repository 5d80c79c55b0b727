"""The system-call filter every confined worker applies to itself before any student code.

Landlock (the uid level) and the namespaces (the bwrap level) decide what a worker may
*reach*; some kernel interfaces lie outside both: sockets other than TCP (MPTCP, UDP, netlink,
packet, named Unix sockets), SysV IPC objects that outlive every process, ptrace,
io_uring (which performs socket operations without the socket system calls), user
namespaces, keyrings, BPF and perf. This filter refuses them (``EPERM``, so the student sees a
plain ``PermissionError``); everything else is allowed.

Two halves:

- the trusted side compiles the filter once with libseccomp (PyPI's ``pyseccomp``, a
  ctypes binding with the API of libseccomp's own Python module) and exports the BPF program
  (:func:`program`); no BPF is written by hand here;
- the worker loads those bytes with one ``prctl`` through ctypes on the libc already in the
  interpreter (:func:`apply`), so nothing new is imported in the sandbox. The filter cannot
  be lifted once loaded, and every thread and process the worker starts inherits it.

From outside, ``/proc/<pid>/status`` shows ``Seccomp: 2`` for a filtered process, which the
session checks (:func:`filter_mode_of`) before it sends the worker any student code.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from .procfs import status_number

# What the filter refuses, and why (for the docs and the tests). Each name is a system call
# of the native architecture; libseccomp skips names the architecture lacks.
DENIED: dict[str, str] = {
    # sockets: socketpair(AF_UNIX) stays (pipes between a process and its children)
    "socket": "no socket of any family (TCP, MPTCP, UDP, netlink, packet, Unix)",
    # SysV IPC and POSIX message queues outlive every process of the sandbox
    **dict.fromkeys(("shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv",
                     "msgctl", "semget", "semop", "semtimedop", "semctl"), "no SysV IPC"),
    **dict.fromkeys(("mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
                     "mq_getsetattr"), "no POSIX message queues"),
    # reading or steering other processes
    **dict.fromkeys(("ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
                     "pidfd_getfd"), "no access to another process's memory"),
    # kernel interfaces a grader never needs, each a known way around the rest
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register"),
                    "no io_uring (it opens sockets without socket())"),
    **dict.fromkeys(("keyctl", "add_key", "request_key"), "no kernel keyrings"),
    **dict.fromkeys(("bpf", "userfaultfd", "perf_event_open"), "no BPF, userfaultfd or perf"),
    **dict.fromkeys(("mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
                     "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
                     "mount_setattr", "name_to_handle_at", "open_by_handle_at"),
                    "no mounts or namespaces"),
    **dict.fromkeys(("init_module", "finit_module", "delete_module", "kexec_load",
                     "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "syslog",
                     "iopl", "ioperm"), "no administration of the machine"),
}
# clone() flags that make a new namespace (clone3 hides its flags in memory: it is answered
# ENOSYS, and the C library falls back to clone, where the flags are visible).
CLONE_NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000,
                         "CLONE_NEWUTS": 0x04000000, "CLONE_NEWIPC": 0x08000000,
                         "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                         "CLONE_NEWNET": 0x40000000}
AF_UNIX = 1
TIOCSTI = 0x5412  # push characters into a terminal's input
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_INSTRUCTION_BYTES = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class SeccompError(OSError):
    """The filter could not be built (trusted side) or loaded (worker)."""


# ----------------------------------------------------------------------------- trusted side


@functools.cache
def program() -> bytes:
    """The filter as a BPF program (compiled once per process by libseccomp)."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: libseccomp.so.2 not found
        raise SeccompError(0, f"libseccomp is not usable here ({exc}); install the project's "
                              "dependencies (pip install -e .) and libseccomp2") from None
    deny = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        _add(rules, deny, name)
    _add(rules, deny, "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
    for flag in CLONE_NAMESPACE_FLAGS.values():
        _add(rules, deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _add(rules, sc.ERRNO(errno.ENOSYS), "clone3")
    _add(rules, deny, "ioctl", sc.Arg(1, sc.EQ, TIOCSTI))
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as sink:
            rules.export_bpf(sink)
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    compiled = b"".join(chunks)
    if not compiled or len(compiled) % _INSTRUCTION_BYTES:
        raise SeccompError(0, f"libseccomp exported {len(compiled)} bytes, not a BPF program")
    return compiled


def _add(rules: object, action: int, name: str, *args: object) -> None:
    """One rule; a system call this architecture does not have is skipped."""
    try:
        rules.add_rule(action, name, *args)  # type: ignore[attr-defined]
    except (ValueError, OSError) as exc:
        if "not found" in str(exc).lower() or getattr(exc, "errno", None) in (
                errno.EINVAL, errno.EDOM, errno.EFAULT):
            return
        raise


@functools.cache
def problem() -> str | None:
    """Why no worker can be filtered here, or None (the filter builds; the kernel has
    seccomp filters: this process's status says so)."""
    try:
        program()
    except SeccompError as exc:
        return str(exc)
    if filter_mode_of(os.getpid()) is None:
        return "the kernel reports no seccomp support (/proc/self/status has no Seccomp line)"
    return None


def filter_mode_of(pid: int) -> int | None:
    """The ``Seccomp:`` mode of process ``pid`` (0 none, 1 strict, 2 filter), None if unknown."""
    return status_number(pid, "Seccomp")


# ----------------------------------------------------------------------------- worker side


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply(compiled: bytes) -> None:
    """Load the BPF program ``compiled`` into this process (the worker, before any student
    code, from its only thread); SeccompError if the kernel refuses."""
    if not compiled or len(compiled) % _INSTRUCTION_BYTES:
        raise SeccompError(0, "the filter is not a BPF program")
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(compiled, len(compiled))
    prog = _SockFprog(len(compiled) // _INSTRUCTION_BYTES, ctypes.addressof(buffer))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) was refused")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise SeccompError(code, f"prctl(PR_SET_SECCOMP): {os.strerror(code)}")
