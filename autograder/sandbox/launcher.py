"""Starting a worker: the isolation level, resource limits, the command line, the process.

Three levels, strongest first (``choose_isolation("auto")`` takes the first that works here
and says why the stronger ones were passed over):

BWRAP: a bubblewrap sandbox that sees only /usr, the interpreter, the venv, this ``sandbox``
package, the probes file (read-only) and the scratch folder (read-write, its working
directory); no network, its own pid/ipc/uts namespaces; the worker runs as an unprivileged
uid chosen per slot (a process started as root is not held by RLIMIT_NPROC). Everything is
bound at its real path: a venv reached through a symlink (``.venv`` -> a folder elsewhere) is
bound, and its interpreter started, where it really is.
UID: for root where namespaces are refused (Gradescope, Docker): the worker runs as the slot's
uid in a private area, confined by Landlock where the kernel has it (:mod:`.uid`).
PROCESS: the same worker in a plain subprocess with the same rlimits, as the grader's own user;
weaker isolation.

The running process itself (pipes, output drain, signals, clean-up) is :mod:`.process`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UsageError
from ..core.results import IsolationRecord
from . import seccomp, slots
from . import uid as uid_level
from .devices import bwrap_gpu_args
from .imports import worker_environment
from .messages import output_marker
from .packages import bwrap_args, package_view
from .process import (
    CapturedOutput,
    DeadlinePassed,
    OutputDrain,
    ProcessEnded,
    SandboxLevel,
    WorkerProcess,
    grow_pipe,
    make_pipe,
    processes_of_uid,
    reap,
)
from .slots import SlotLease, slot_uid
from .wire import SandboxError

__all__ = [
    "LEVEL_NAMES",
    "SANDBOX_ENV",
    "CapturedOutput",
    "DeadlinePassed",
    "Isolation",
    "WorkerLimits",
    "OutputDrain",
    "ProcessEnded",
    "SandboxLevel",
    "SandboxUnavailable",
    "SlotLease",
    "WorkerProcess",
    "package_view",
    "bwrap_problem",
    "choose_isolation",
    "interpreter_problem",
    "plan_launch",
    "prepare_scratch",
    "processes_of_uid",
    "promised_confinement",
    "slot_uid",
    "start_worker",
]

GIB, MIB = 1 << 30, 1 << 20
BWRAP = "/usr/bin/bwrap"
SANDBOX_HOME = "/home/student"  # the scratch folder, seen from inside the sandbox
SANDBOX_PROBES = "/opt/autograder/probes.py"
SANDBOX_FIXTURES = "/opt/autograder/fixtures.py"
READ_CHUNK = 1 << 20


class SandboxUnavailable(SandboxError, UsageError):
    """The requested isolation level cannot run on this machine."""


@dataclass(frozen=True)
class WorkerLimits:
    """Resource limits of one worker (rlimits; output and /tmp caps)."""

    address_space_bytes: int = 8 * GIB  # torch needs about 4 GiB just to import
    cpu_seconds: int = 3600  # for the worker's whole life (it restarts after a kill)
    max_processes: int = 64  # processes and threads of the worker's uid
    max_open_files: int = 256
    max_file_bytes: int = 512 * MIB
    max_output_bytes: int = 1 * MIB  # stdout+stderr kept per request (the tail)
    tmp_bytes: int = 256 * MIB  # size of the sandbox's private /tmp (bwrap only)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or value <= 0:
                raise ValueError(f"WorkerLimits.{name} must be a positive int, got {value!r}")


# ----------------------------------------------------------------------------- levels


@dataclass(frozen=True)
class Isolation:
    """The level that grades here, what confines its workers, and why each stronger level
    was passed over (said in every result, the feedback and the batch's summary line)."""

    level: SandboxLevel
    confinement: str
    passed_over: tuple[tuple[str, str], ...] = ()  # (stronger level, why it was not used)

    def record(self) -> IsolationRecord:
        """For ``extra_data.isolation`` in results.json."""
        return IsolationRecord(self.level.value, self.confinement, dict(self.passed_over))

    def as_dict(self) -> dict[str, object]:
        """:meth:`record` as plain data."""
        return self.record().as_dict()

    def one_line(self) -> str:
        """``uid (an unprivileged uid ...; Landlock ABI 7: ...); not bwrap: why``."""
        why = "; ".join(f"not {name}: {reason}" for name, reason in self.passed_over)
        return f"{self.level.value} ({self.confinement})" + (f"; {why}" if why else "")


LEVEL_NAMES = tuple(level.value for level in SandboxLevel)  # strongest first
SANDBOX_ENV = "AUTOGRADER_SANDBOX"  # the default of grade --sandbox (Gradescope's bundle sets it)


def _confinement(level: SandboxLevel) -> str:
    if level is SandboxLevel.BWRAP:
        uid = ", an unprivileged uid per worker" if os.geteuid() == 0 else ""
        return f"bubblewrap namespaces{uid}; {_filter_words()}"
    if level is SandboxLevel.UID:
        return f"{uid_level.confinement()}; {_filter_words()}"
    return "the grader's own user; limits and deadlines only"


def _filter_words() -> str:
    problem = seccomp.problem()
    if problem is None:
        return "a system-call filter (no sockets but Unix pairs, no SysV IPC, no ptrace)"
    return f"no system-call filter ({problem})"


def promised_confinement(level: SandboxLevel) -> tuple[int, bool]:
    """What every worker at ``level`` must have applied before student code runs: the
    Landlock ABI of its ruleset (0: none) and whether the system-call filter is loaded.
    The session checks each worker against it and never runs one that falls short."""
    if level is SandboxLevel.UID:
        return uid_level.landlock_abi(), True
    if level is SandboxLevel.BWRAP:
        return 0, seccomp.problem() is None
    return 0, False


def level_problem(level: SandboxLevel) -> str | None:
    """Why ``level`` cannot run here, or None (probed once per process)."""
    if level is SandboxLevel.BWRAP:
        return bwrap_problem()
    if level is SandboxLevel.UID:
        return uid_level.uid_problem() or uid_level.landlock_problem()
    return None


def choose_isolation(requested: str) -> Isolation:
    """``"auto"``: the strongest level that works here; a level's name insists on it
    (SandboxUnavailable, saying what to do, where it cannot run)."""
    if requested not in ("auto", *LEVEL_NAMES):
        raise UsageError(f"sandbox level must be 'auto' or one of {', '.join(LEVEL_NAMES)}, "
                         f"not {requested!r}")
    passed_over: list[tuple[str, str]] = []
    for level in SandboxLevel:
        if requested not in ("auto", level.value):
            if _stronger(level, requested):
                passed_over.append((level.value, f"--sandbox {requested} was asked for"))
            continue
        problem = level_problem(level)
        if problem is None:
            if level is SandboxLevel.BWRAP and (trouble := interpreter_problem()) is not None:
                raise SandboxUnavailable(trouble)  # bwrap works: say how to fix, not fall back
            return Isolation(level, _confinement(level), tuple(passed_over))
        if requested != "auto":
            raise SandboxUnavailable(_unavailable(level, problem))
        passed_over.append((level.value, problem))
    raise AssertionError("the process level always works")


def _stronger(level: SandboxLevel, than: str) -> bool:
    order = list(SandboxLevel)
    return order.index(level) < order.index(SandboxLevel(than))


def _unavailable(level: SandboxLevel, problem: str) -> str:
    if level is SandboxLevel.BWRAP:
        return (f"bubblewrap sandboxing was requested but does not work here: {problem}. "
                "Install it (apt-get install bubblewrap util-linux) and allow mount/pid "
                "namespaces, or choose --sandbox uid (as root) or process and accept weaker "
                "isolation.")
    return (f"the uid level was requested but cannot run here: {problem}. Run the grader as "
            "root, or choose --sandbox process and accept weaker isolation.")


@functools.cache
def bwrap_problem() -> str | None:
    """Why the bwrap level cannot run here (probed once by running ``true`` inside), or None."""
    needed = [BWRAP, uid_level.PRLIMIT] + ([uid_level.SETPRIV] if os.geteuid() == 0 else [])
    missing = [tool for tool in needed if not os.access(tool, os.X_OK)]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        with _probe_uid() as uid:
            argv = [*_bwrap_system_args(), "--perms", "1777", "--size", str(MIB), "--tmpfs",
                    "/tmp", "--proc", "/proc", "--dev", "/dev", *_NAMESPACE_ARGS, "--clearenv",
                    *uid_level.drop_privileges(uid, killed_with_parent=False),
                    uid_level.PRLIMIT, "--nproc=64", "--", "/usr/bin/true"]
            done = subprocess.run(argv, capture_output=True, timeout=20,
                                  stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
        return f"{BWRAP} could not run ({exc})"
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")[:500]
        return f"{BWRAP} exited with {done.returncode}: {stderr}"
    return None


@functools.cache
def interpreter_problem() -> str | None:
    """Why this interpreter cannot start inside bubblewrap as the worker does, or None.

    Probed once: the interpreter runs in a minimal sandbox with the same binds and uid as a
    worker, and must find its venv there (the folders the package view filters).
    """
    interpreter = _interpreter()
    argv = [*_bwrap_system_args(), *_bwrap_etc_args(Path("/nonexistent"), None),
            "--perms", "1777", "--size", str(16 * MIB), "--tmpfs", "/tmp"]
    argv += _interpreter_binds(argv)
    argv += ["--proc", "/proc", "--dev", "/dev", *_NAMESPACE_ARGS, "--clearenv",
             "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LC_ALL", "C.UTF-8"]
    command = [str(interpreter), "-I", "-B", "-c", "import sys; print(sys.prefix)"]
    expected = os.path.realpath(sys.prefix)
    what_to_do = (
        f"Grading starts {interpreter} inside the sandbox (the real path of {sys.executable}), "
        f"with {sys.prefix} bound at {expected} and the base interpreter's {sys.base_prefix} "
        f"at {os.path.realpath(sys.base_prefix)}. Make these readable by other users "
        "(the worker runs as an unprivileged uid), or recreate the virtual environment as a "
        "plain folder (`python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]'`), or "
        "grade with --sandbox process (weaker isolation)."
    )
    try:
        with _probe_uid() as uid:
            dropped = uid_level.drop_privileges(uid, killed_with_parent=False)
            done = subprocess.run([*argv, *dropped, *command], capture_output=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
        return f"the interpreter could not be started inside bubblewrap ({exc}). {what_to_do}"
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()[-500:]
        return (f"the interpreter does not start inside bubblewrap (exit {done.returncode}: "
                f"{stderr}). {what_to_do}")
    inside = done.stdout.decode(errors="replace").strip()
    if inside != expected:
        return (f"inside bubblewrap the interpreter runs from {inside!r}, not from the "
                f"virtual environment {expected}, so it would not see the packages grading "
                f"needs. {what_to_do}")
    return None


@contextmanager
def _probe_uid() -> Iterator[int | None]:
    """The uid a probe runs as: a leased slot's as root (never one a worker holds), else
    our own (None)."""
    if os.geteuid() != 0:
        yield None
        return
    with slots.probe_uid() as uid:
        yield uid


# ----------------------------------------------------------------------------- commands

_NAMESPACE_ARGS = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                   "--unshare-cgroup-try", "--hostname", "sandbox",
                   "--die-with-parent", "--new-session")


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start one worker process."""

    argv: list[str]
    env: dict[str, str] | None  # None: bwrap sets the environment itself
    cwd: Path | None
    uid: int | None  # the worker's uid when it is dropped to one


def _package_args(packages: tuple[str, ...] | None, level: SandboxLevel) -> list[str]:
    """Worker arguments for the import guard: the allowed list (and, without bwrap, the
    names to refuse, since the files cannot be hidden there)."""
    if packages is None:
        return []
    args = [f"--packages={','.join(packages)}"]
    if level is not SandboxLevel.BWRAP:
        args.append(f"--blocked={','.join(package_view(packages).blocked)}")
    return args


def plan_launch(level: SandboxLevel, *, scratch: Path, probes: Path | None, limits: WorkerLimits,
                slot: int, extra_env: Mapping[str, str], worker_args: list[str],
                private_dir: Path, fixtures: Path | None = None,
                packages: tuple[str, ...] | None = None, gpu: bool = False,
                area: uid_level.UidHome | None = None,
                seccomp_fd: int | None = None) -> LaunchPlan:
    """The command line for a worker at ``level``; ``private_dir`` is ours to write in.

    ``packages``: what the worker may import beyond the stdlib (None: everything).
    ``gpu``: the NVIDIA device nodes are bound in (and the address-space limit lifted: CUDA
    reserves far more virtual memory than it uses).
    ``area``: the uid level's private area (its home is ``scratch``, its trusted copies are
    ``probes`` and ``fixtures``).
    ``seccomp_fd``: an inherited fd holding the system-call filter the worker loads.
    """
    worker_args = [*worker_args, *_package_args(packages, level)]
    if seccomp_fd is not None:
        worker_args.append(f"--seccomp-fd={seccomp_fd}")
    if level is SandboxLevel.UID:
        if area is None:
            raise ValueError("the uid level needs the worker's private area")
        return _plan_uid(area, packages, limits, extra_env, worker_args, probes, fixtures, gpu)
    if level is SandboxLevel.PROCESS:
        env = _worker_env(str(scratch), str(private_dir / "tmp"), extra_env)
        (private_dir / "tmp").mkdir(exist_ok=True)
        trusted = [f"--probes={probes}"] if probes else []
        trusted += [f"--fixtures={fixtures}"] if fixtures else []
        argv = [uid_level.SETPRIV, "--pdeathsig", "KILL", "--", *_prlimit_args(limits, gpu),
                *_python_args(sys.executable), *worker_args, *trusted]
        return LaunchPlan(argv, env, scratch, None)
    as_root = os.geteuid() == 0
    uid = slot_uid(slot) if as_root else None
    env = _worker_env(SANDBOX_HOME, "/tmp", extra_env)
    argv = [*_bwrap_system_args(), *_bwrap_etc_args(private_dir, uid)]
    # The private /tmp comes before the binds: a project or venv that lives under /tmp (a CI
    # clone, say) must be bound on top of it, not hidden by it.
    argv += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    argv += _interpreter_binds(argv)
    if packages is not None:
        argv += bwrap_args(package_view(packages))
    argv += _bind_with_parents(uid_level.PACKAGE_DIR, uid_level.PACKAGE_DIR, argv)
    probes_arg: list[str] = []
    for source, inside, key in ((probes, SANDBOX_PROBES, "probes"),
                                (fixtures, SANDBOX_FIXTURES, "fixtures")):
        if source is not None:
            argv += _bind_with_parents(source.resolve(), Path(inside), argv)
            probes_arg.append(f"--{key}={inside}")
    argv += _bind_with_parents(scratch.resolve(), Path(SANDBOX_HOME), argv, writable=True)
    argv += ["--chdir", SANDBOX_HOME, "--proc", "/proc", "--dev", "/dev"]
    if gpu:
        argv += bwrap_gpu_args()
    argv += [*_NAMESPACE_ARGS, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += [*uid_level.drop_privileges(uid, killed_with_parent=False),
             *_prlimit_args(limits, gpu),
             *_python_args(str(_interpreter())), *worker_args, *probes_arg]
    return LaunchPlan(argv, None, None, uid)


def _plan_uid(area: uid_level.UidHome, packages: tuple[str, ...] | None, limits: WorkerLimits,
              extra_env: Mapping[str, str], worker_args: list[str], probes: Path | None,
              fixtures: Path | None, gpu: bool) -> LaunchPlan:
    """The uid level: setpriv to the slot's uid, rlimits, and the Landlock rules (written
    where the worker can read but not change them) when the kernel has Landlock."""
    env = _worker_env(str(area.home), str(area.tmp),
                      {"USER": "student", "LOGNAME": "student", **extra_env})
    trusted = [f"--probes={probes}"] if probes else []
    trusted += [f"--fixtures={fixtures}"] if fixtures else []
    if uid_level.landlock_abi() > 0:
        view = package_view(packages) if packages is not None else None
        uid_level.worker_rules(area, view, gpu).dump(area.rules_file)
        os.chmod(area.rules_file, 0o644)
        trusted.append(f"--landlock={area.rules_file}")
    argv = [*uid_level.drop_privileges(area.uid), *_prlimit_args(limits, gpu),
            *_python_args(sys.executable), *worker_args, *trusted]
    return LaunchPlan(argv, env, area.home, area.uid)


def _bwrap_system_args() -> list[str]:
    args = [BWRAP, "--ro-bind", "/usr", "/usr"]
    for name in uid_level.SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    return args


def _bwrap_etc_args(private_dir: Path, uid: int | None) -> list[str]:
    """A minimal /etc: loader and font config from the host, our own passwd and group."""
    args = ["--perms", "0755", "--dir", "/etc"]
    for name in uid_level.HOST_ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    if uid is not None:
        etc = private_dir / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"student:x:{uid}:{uid}:student:{SANDBOX_HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nstudent:x:{uid}:\nnogroup:x:65534:\n")
        args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd",
                 "--ro-bind", str(etc / "group"), "/etc/group"]
    return args


@functools.cache
def _interpreter() -> Path:
    """The interpreter the sandbox starts: ``sys.executable`` at the venv's real location.

    Only real paths exist inside. A venv's interpreter must be started from inside the venv
    (Python finds ``pyvenv.cfg`` beside the path it was started as), so a venv reached through
    a symlink is started at ``realpath(sys.prefix)/bin/python``; its site-packages is then the
    real folder the package view filters. Without a venv, the real file itself.
    """
    executable = Path(os.path.abspath(sys.executable))
    prefix = Path(os.path.abspath(sys.prefix))
    if sys.prefix != sys.base_prefix and executable.is_relative_to(prefix):
        return Path(os.path.realpath(prefix)) / executable.relative_to(prefix)
    return Path(os.path.realpath(executable))


def _link_chain(path: Path) -> tuple[list[tuple[Path, str]], Path]:
    """The symbolic links from ``path`` to the file it names (each with its target), and that
    file; folders on the way at their real paths, as the sandbox binds them."""
    links: list[tuple[Path, str]] = []
    current = Path(os.path.realpath(path.parent)) / path.name
    for _ in range(40):
        if not current.is_symlink():
            return links, current
        target = os.readlink(current)
        links.append((current, target))
        following = current.parent / target  # a relative target counts from the link's folder
        current = Path(os.path.realpath(following.parent)) / following.name
    raise SandboxUnavailable(f"{path}: too many levels of symbolic links")


def _interpreter_binds(so_far: list[str]) -> list[str]:
    """Bind the base interpreter and the venv at their real paths, and recreate any link on
    the way from the started interpreter to its real file that those binds do not show
    (a venv's ``bin/python`` pointing to a folder outside both, say)."""
    args: list[str] = []
    roots = [Path("/usr"), *uid_level.interpreter_roots()]
    roots += [Path("/") / name for name in uid_level.SYSTEM_DIRS
              if not (Path("/") / name).is_symlink()]
    for path in uid_level.interpreter_roots():
        args += _bind_with_parents(path, path, [*so_far, *args])
    links, real = _link_chain(_interpreter())
    for link, target in links:
        if not any(link.is_relative_to(root) for root in roots):
            args += _with_parents(link, [*so_far, *args]) + ["--symlink", target, str(link)]
    if not any(real.is_relative_to(root) for root in roots):
        args += _bind_with_parents(real, real, [*so_far, *args])
    return args


def _with_parents(dest: Path, so_far: list[str]) -> list[str]:
    """Create the missing parents of ``dest`` as mode-0755 folders.

    (bwrap would create them mode 0700, and the unprivileged worker could not pass.)
    """
    made = {so_far[i + 1] for i, arg in enumerate(so_far[:-1]) if arg in ("--dir", "--tmpfs")}
    made |= {so_far[i + 2] for i, arg in enumerate(so_far[:-2])
             if arg in ("--ro-bind", "--bind", "--symlink")}
    args: list[str] = []
    for parent in reversed(dest.parents):
        if str(parent) not in ("/", "/usr") and str(parent) not in made:
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(str(parent))
    return args


def _bind_with_parents(source: Path, dest: Path, so_far: list[str], *,
                       writable: bool = False) -> list[str]:
    """Bind ``source`` at ``dest``, first creating missing parents as mode-0755 folders."""
    return [*_with_parents(dest, so_far), "--bind" if writable else "--ro-bind", str(source),
            str(dest)]


def _prlimit_args(limits: WorkerLimits, gpu: bool = False) -> list[str]:
    return [
        uid_level.PRLIMIT,
        "--as=unlimited" if gpu else f"--as={limits.address_space_bytes}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",  # SIGXCPU, then SIGKILL
        f"--nproc={limits.max_processes}",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_bytes}",
        "--core=0",
        "--",
    ]


def _python_args(executable: str) -> list[str]:
    # -I: no user site, no PYTHON* variables, no script folder on sys.path; -B: no .pyc.
    bootstrap = (
        f"import sys; sys.path.insert(0, {str(uid_level.IMPORT_ROOT)!r}); "
        "from autograder.sandbox.worker import main; sys.exit(main(sys.argv[1:]))"
    )
    return [executable, "-I", "-B", "-X", "utf8", "-X", "faulthandler", "-c", bootstrap]


def _worker_env(home: str, tmp: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        "XDG_CACHE_HOME": f"{tmp}/cache",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    # The grader's language, and what the worker writes in it, go in last: a clean
    # environment would drop them, and nothing else may choose them.
    env.update(worker_environment())
    return env


def prepare_scratch(scratch: Path, uid: int | None) -> None:
    """Give the worker's uid the scratch folder and everything in it (links not followed)."""
    if not scratch.is_dir():
        raise FileNotFoundError(f"scratch folder {scratch} does not exist; create it first")
    if uid is None:
        return
    os.chown(scratch, uid, uid)
    for root, dirs, files in os.walk(scratch):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def start_worker(level: SandboxLevel, *, scratch: Path, probes: Path | None, limits: WorkerLimits,
                 slot: int, extra_env: Mapping[str, str], generation: int, marker: str,
                 max_bytes: int, fixtures: Path | None = None,
                 watch: frozenset[str] = frozenset(),
                 packages: tuple[str, ...] | None = None, gpu: bool = False,
                 area: uid_level.UidHome | None = None) -> WorkerProcess:
    """Start a worker process; it will send a ``ready`` message when it is up."""
    _precompile_package()
    stack = ExitStack()
    try:
        private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sandbox-")))
        req_r, req_w = make_pipe()
        stack.callback(os.close, req_w)
        rep_r, rep_w = make_pipe()
        stack.callback(os.close, rep_r)
        filter_fd = None
        try:  # the child's ends: closed here once the child has its copies, never twice
            filter_fd = _filter_fd(level)
            worker_args = [f"--request-fd={req_r}", f"--reply-fd={rep_w}",
                           f"--generation={generation}", f"--marker={marker}",
                           f"--max-bytes={max_bytes}"]
            if watch:
                worker_args.append(f"--watch={','.join(sorted(watch))}")
            plan = plan_launch(level, scratch=scratch, probes=probes, limits=limits,
                               slot=slot, extra_env=extra_env, worker_args=worker_args,
                               private_dir=private, fixtures=fixtures, packages=packages,
                               gpu=gpu, area=area, seccomp_fd=filter_fd)
            inherited = (req_r, rep_w) + ((filter_fd,) if filter_fd is not None else ())
            popen = subprocess.Popen(
                plan.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, pass_fds=inherited, cwd=plan.cwd,
                env=plan.env, start_new_session=True,
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
            if filter_fd is not None:
                os.close(filter_fd)
        stack.callback(reap, popen)
        assert popen.stdout is not None
        stack.callback(popen.stdout.close)
        grow_pipe(popen.stdout.fileno())
        os.set_blocking(req_w, False)
        os.set_blocking(rep_r, False)
        drain = OutputDrain(popen.stdout.fileno(), output_marker(marker.encode()),
                            limits.max_output_bytes)
        return WorkerProcess(popen, req_w, rep_r, drain, level, plan.uid, max_bytes, stack)
    except BaseException:
        stack.close()
        raise


def _filter_fd(level: SandboxLevel) -> int | None:
    """A file holding the system-call filter, for a worker at ``level`` that must load it."""
    if not promised_confinement(level)[1]:
        return None
    fd = os.memfd_create("autograder-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, seccomp.program())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


@functools.cache
def _precompile_package() -> None:
    """Write this package's .pyc files (once per process) so each worker start skips
    compiling them: inside the sandbox the package is read-only."""
    import compileall

    try:
        compileall.compile_dir(str(uid_level.PACKAGE_DIR), quiet=2, maxlevels=0)
    except OSError:
        pass  # a read-only install: the worker compiles in memory, a little slower
