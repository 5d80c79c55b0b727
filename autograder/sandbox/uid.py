"""The uid level: for root on machines that refuse the namespaces bubblewrap needs.

Gradescope and Docker run the autograder as root and usually refuse user namespaces. There
the worker runs as the unprivileged uid of its slot (the uids the bwrap level leases, so two
workers never share one) with the same rlimits, and, where the kernel has Landlock, inside a
ruleset the worker applies to itself before any student code (:mod:`.landlock`): it reads only
the interpreter, the system's libraries, the allowed packages, this ``sandbox`` package and its
trusted files, writes only its own home and tmp, opens no TCP connection and signals no process
outside its own. Without Landlock the uid alone keeps the worker from signalling the grader
and from reading what only root may read; :func:`private_while_grading` then takes "others"
off the grader's folders for the length of the batch, and gives them back after.

Each worker start gets a private area, made here (trusted side)::

    <HOMES>/<random>/   root, 0711: enterable, not listable
        home/           the submission's files; the worker's cwd and HOME (the slot uid, 0700)
        tmp/            its TMPDIR (the slot uid, 0700)
        trusted/        probes.py, fixtures.py, landlock.json (root; read-only to the worker)
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import seccomp, slots
from .landlock import Rules, capabilities
from .packages import OTHER_SITE_GLOBS, PackageView, site_dirs
from .wire import SandboxError

log = logging.getLogger(__name__)

SETPRIV, PRLIMIT = "/usr/bin/setpriv", "/usr/bin/prlimit"
HOMES_ROOT = Path("/tmp")  # machine-wide, like the slot locks
PACKAGE_DIR = Path(__file__).resolve().parent  # .../autograder/sandbox
IMPORT_ROOT = PACKAGE_DIR.parent.parent  # the folder that holds autograder/
HOST_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts")
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # beside /usr (or links into it)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def drop_privileges(uid: int | None, *, killed_with_parent: bool = True) -> list[str]:
    """setpriv arguments that run what follows as ``uid`` with no capabilities, for good
    (None: as we are, no arguments). ``killed_with_parent``: SIGKILL when its parent dies
    (inside bubblewrap, ``--die-with-parent`` does that instead)."""
    if uid is None:
        return []
    return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--nnp",
            "--inh-caps=-all", "--bounding-set=-all",
            *(["--pdeathsig=KILL"] if killed_with_parent else []), "--"]


# ----------------------------------------------------------------------------- homes


def _homes_dir() -> Path:
    """The root-owned 0711 folder that holds every worker's private area."""
    root = HOMES_ROOT if HOMES_ROOT.is_dir() else Path(tempfile.gettempdir())
    return slots.own_folder(root / f"autograder-sandbox-homes-{os.geteuid()}", 0o711)


_LIVE_AREAS: set[Path] = set()  # created and not yet removed, for remove_live_areas
_CREATING = threading.Lock()  # held while an area is made, so that none is half-made at exit
_INTERRUPTED = threading.Event()  # set by remove_live_areas: no new area from then on


def remove_live_areas() -> None:
    """Delete every private area this process made (an interrupted batch: the workers and
    everything of their uids are already killed). Waits for an area being made by another
    thread, and refuses any later one, so that nothing is created after the clean-up."""
    with _CREATING:
        _INTERRUPTED.set()
        for root in list(_LIVE_AREAS):
            UidHome(root, 0).remove()


@dataclass(frozen=True)
class UidHome:
    """One worker's private area (see the module's docstring)."""

    root: Path
    uid: int

    @property
    def home(self) -> Path:
        """The worker's cwd and HOME: a copy of the submission's files."""
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        """The worker's TMPDIR."""
        return self.root / "tmp"

    @property
    def trusted(self) -> Path:
        """Root-owned: the trusted files the worker loads, and its Landlock rules."""
        return self.root / "trusted"

    @property
    def rules_file(self) -> Path:
        """The Landlock rules the worker applies to itself."""
        return self.trusted / "landlock.json"

    @classmethod
    def create(cls, uid: int, scratch: Path, trusted_files: dict[str, Path | None]) -> UidHome:
        """A fresh area for ``uid``: ``scratch``'s files moved into home (copied across file
        systems, links kept as links), each trusted file copied in under its key's name
        (``probes.py``, ``fixtures.py``)."""
        with _CREATING:
            if _INTERRUPTED.is_set():
                raise SandboxError("the batch was interrupted: no new sandbox is started")
            made = cls(Path(tempfile.mkdtemp(prefix="w-", dir=_homes_dir())), uid)
            _LIVE_AREAS.add(made.root)
            try:
                made._fill(scratch, trusted_files)
            except BaseException:
                made.remove()
                raise
        return made

    def _fill(self, scratch: Path, trusted_files: dict[str, Path | None]) -> None:
        os.chmod(self.root, 0o711)
        _move_or_copy(scratch, self.home)
        self.tmp.mkdir()
        for folder in (self.home, self.tmp):
            _give(folder, self.uid)
        self.trusted.mkdir(mode=0o755)
        os.chmod(self.trusted, 0o755)
        for name, source in trusted_files.items():
            if source is not None:
                shutil.copyfile(source, self.trusted / name)
                os.chmod(self.trusted / name, 0o644)

    def trusted_copy(self, name: str, source: Path | None) -> Path | None:
        """Where the copy of a trusted file is (None if there is none)."""
        return self.trusted / name if source is not None else None

    def remove(self) -> None:
        """Delete the area (after the worker and everything of its uid is dead)."""
        shutil.rmtree(self.root, ignore_errors=True)
        _LIVE_AREAS.discard(self.root)


def _move_or_copy(scratch: Path, home: Path) -> None:
    """The submission's files into the area: moved where both are on one file system (the
    scratch folder is the caller's throwaway copy: no second copy on disk), else copied,
    links kept as links. The scratch folder is left empty either way."""
    try:
        os.rename(scratch, home)
    except OSError:
        shutil.copytree(scratch, home, symlinks=True)
        shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(exist_ok=True)


def _give(folder: Path, uid: int) -> None:
    """``folder`` and everything in it to ``uid`` (links not followed), the folder 0700."""
    os.chown(folder, uid, uid)
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


# ----------------------------------------------------------------------------- rules


def _allow_except(root: Path, excluded: list[Path],
                  seen: frozenset[Path] = frozenset()) -> tuple[list[str], list[str]]:
    """Read rules covering ``root`` without anything in ``excluded`` (real paths): the
    untouched parts whole, the folders on the way to an excluded path as list-only.

    A link is judged by where it leads (Landlock follows it when the rule is made), so a
    link to a folder that holds an excluded path is split like that folder.
    """
    real = root.resolve()
    if real in seen or any(real.is_relative_to(path) for path in excluded):
        return [], []
    if not any(path.is_relative_to(real) for path in excluded):
        return [str(root)], []
    read, listing = [], [str(real)]
    for child in sorted(real.iterdir()):
        more_read, more_listing = _allow_except(child, excluded, seen | {real})
        read += more_read
        listing += more_listing
    return read, listing


def _python_site_folders() -> list[Path]:
    """Every folder of installed packages the interpreter could reach (real paths)."""
    patterns = [f"{sys.base_prefix}/lib/python3*/site-packages", *OTHER_SITE_GLOBS]
    found = {Path(p).resolve() for pattern in patterns for p in glob.glob(pattern)}
    return sorted(found | set(site_dirs()))


def worker_rules(area: UidHome, view: PackageView | None, gpu: bool) -> Rules:
    """The Landlock rules of one worker: what it may read, list, write and open as a device.

    ``view`` None: the assignment allows every installed package (site-packages readable).
    """
    sites = _python_site_folders()
    hidden = sites if view is not None else []
    read: list[str] = []
    listing: list[str] = []
    for root in (*_system_roots(), *interpreter_roots()):
        more_read, more_listing = _allow_except(root, hidden)
        read += more_read
        listing += more_listing
    if view is not None:
        listing += [str(site) for site in view.site_dirs]
        read += [str(entry) for entry in view.entries]
    read += [f"/etc/{name}" for name in HOST_ETC_FILES if os.path.exists(f"/etc/{name}")]
    read += [*_proc_entries(), str(PACKAGE_DIR),
             str(IMPORT_ROOT / "autograder" / "__init__.py"), str(area.trusted)]
    listing += ["/proc", str(IMPORT_ROOT / "autograder")]
    devices = list(DEVICES)
    if gpu:
        from .devices import nvidia_nodes

        devices += nvidia_nodes()
        read.append("/sys")
    return Rules(read=tuple(sorted(set(read))), list_only=tuple(sorted(set(listing))),
                 write=(str(area.home), str(area.tmp)), devices=tuple(devices))


def _proc_entries() -> list[str]:
    """What of /proc a worker reads: the system-wide files (cpuinfo, meminfo, sys/...) and
    its own process, never another's (command lines there carry addresses and tokens: a Ray
    node's GCS address, say). ``/proc/self`` is resolved by the worker when it applies the
    rules, so it names the worker's own pid; a process the worker starts cannot read its own
    /proc entry, which nothing the grader runs needs."""
    entries = ["/proc/self", "/proc/thread-self"]
    try:
        names = os.listdir("/proc")
    except OSError:
        return entries
    return entries + [f"/proc/{name}" for name in sorted(names)
                      if not name.isdigit() and name not in ("self", "thread-self")]


def _system_roots() -> list[Path]:
    """/usr and the top-level library and program folders that are not links into it."""
    names = ("usr", *SYSTEM_DIRS)
    return [Path("/") / name for name in names
            if (Path("/") / name).is_dir() and not (Path("/") / name).is_symlink()]


def interpreter_roots() -> list[Path]:
    """Folders the interpreter needs: its real prefix and the venv (outside /usr), real
    paths."""
    roots: list[Path] = []
    for prefix in (sys.base_prefix, sys.prefix):
        path = Path(prefix).resolve()
        if not path.is_relative_to("/usr") and path not in roots:
            roots.append(path)
    return roots


# ----------------------------------------------------------------------------- probes


@functools.cache
def uid_problem() -> str | None:
    """Why the uid level cannot run here (probed once: this interpreter started as a slot
    uid must be the same interpreter and import the worker), or None."""
    if os.geteuid() != 0:
        return "the grader does not run as root, so it cannot start workers as another uid"
    missing = [tool for tool in (SETPRIV, PRLIMIT) if not os.access(tool, os.X_OK)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install util-linux)"
    if (problem := seccomp.problem()) is not None:
        return f"no system-call filter can be loaded here ({problem})"
    # The worker must import this very grader (not another copy the interpreter finds, such
    # as a venv's editable install, when other users cannot enter IMPORT_ROOT).
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import autograder.sandbox.worker as w; "
            "print(sys.prefix); print(sys.version); print(w.__file__)")
    uid = "a slot uid"
    try:
        with slots.probe_uid() as uid:
            argv = [*drop_privileges(uid), sys.executable, "-I", "-B", "-c", code,
                    str(IMPORT_ROOT)]
            done = subprocess.run(argv, capture_output=True, timeout=60,
                                  stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
        return f"the interpreter could not be started as {uid} ({exc})"
    expected = f"{sys.prefix}\n{sys.version}\n{PACKAGE_DIR / 'worker.py'}"
    seen = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or seen != expected:
        stderr = done.stderr.decode(errors="replace").strip()[-400:]
        return (
            f"as uid {uid} the interpreter {sys.executable} does not start as it does for "
            f"the grader (exit {done.returncode}; it reported {seen!r}, expected {expected!r}; "
            f"{stderr}). Every folder from / to the interpreter, the virtual environment and "
            f"{IMPORT_ROOT} must be enterable by other users: {_closed_folders()}"
        )
    return None


def closed_folders() -> list[Path]:
    """The folders on the way to the interpreter and the project that other users cannot
    enter (the uid level's workers need to pass through each)."""
    closed: list[Path] = []
    for target in (Path(sys.executable).resolve(), Path(sys.prefix), IMPORT_ROOT):
        for folder in (target, *target.parents):
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH and folder not in closed:
                closed.append(folder)
    return closed


def _closed_folders() -> str:
    closed = [str(folder) for folder in closed_folders()]
    if not closed:
        return "none looks closed; check the output above"
    return f"{', '.join(closed)} (for example: chmod o+x {' '.join(closed)})"


@functools.cache
def landlock_state() -> tuple[int, str]:
    """The Landlock ABI a worker gets here, and why it is 0 when it is: the version, once a
    probe run as a leased slot uid has seen a ruleset refuse a read."""
    if (problem := uid_problem()) is not None:
        return 0, f"the uid level cannot run ({problem})"
    from .landlock import abi
    kernel = abi()
    if kernel == 0:
        return 0, "the kernel has no Landlock, has it off, or refuses its system calls"
    for _attempt in range(2):  # once more on a fresh lease before calling Landlock broken
        version, failure = _probe_landlock()
        if version > 0:
            return version, ""
    return 0, f"the kernel reports Landlock ABI {kernel}, but {failure}"


def landlock_problem() -> str | None:
    """Why the uid level must not run here although it could start workers: the kernel has
    Landlock, yet a ruleset did not hold in the probe (never grade weaker than the kernel
    allows without saying so at the start)."""
    version, why = landlock_state()
    if version == 0 and why.startswith("the kernel reports Landlock"):
        return why
    return None


def _probe_landlock() -> tuple[int, str]:
    """Apply a ruleset as a leased slot uid and try to read a file outside it."""
    with tempfile.TemporaryDirectory(prefix="landlock-probe-", dir=_homes_dir()) as folder:
        os.chmod(folder, 0o755)
        secret = Path(folder) / "outside.txt"
        secret.write_text("outside the ruleset\n")
        os.chmod(secret, 0o644)
        rules = Path(folder) / "rules.json"
        Rules(read=tuple(r for r in (*map(str, interpreter_roots()), "/usr")),
              list_only=(), write=(), devices=("/dev/null",)).dump(rules)
        os.chmod(rules, 0o644)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from autograder.sandbox import landlock; "
                "version = landlock.apply(landlock.Rules.load(sys.argv[2]))\n"
                "try:\n    open(sys.argv[3]).read(); print('read')\n"
                "except PermissionError:\n    print(version)")
        uid = "a slot uid"
        try:
            with slots.probe_uid() as uid:
                argv = [*drop_privileges(uid), sys.executable, "-I", "-B", "-c", code,
                        str(IMPORT_ROOT), str(rules), str(secret)]
                done = subprocess.run(argv, capture_output=True, timeout=60,
                                      stdin=subprocess.DEVNULL, cwd="/")
        except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
            return 0, f"the Landlock probe could not run ({exc})"
    answer = done.stdout.decode(errors="replace").strip()
    if done.returncode == 0 and answer.isdigit():
        return int(answer), ""
    stderr = done.stderr.decode(errors="replace").strip()[-300:]
    return 0, (f"a ruleset applied as uid {uid} did not hold (exit {done.returncode}, "
               f"{answer!r}, {stderr})")


def landlock_abi() -> int:
    """The Landlock ABI a uid-level worker is confined with here (0: none)."""
    return landlock_state()[0]


def confinement() -> str:
    """What confines a uid-level worker here, in words (why without Landlock, if so)."""
    version, why = landlock_state()
    return f"an unprivileged uid per worker; {capabilities(version)}" + (
        f" ({why})" if why else "")


_CHANGED_MODES: dict[Path, int] = {}  # folders made private, with the mode they had
_MODES_LOCK = threading.Lock()


def make_private(folders: list[Path]) -> list[Path]:
    """Take "others" off ``folders`` (read, write, enter) where the uid alone guards them
    (no Landlock); returns the folders changed. Each one's old mode is kept for
    :func:`restore_modes`."""
    changed = []
    with _MODES_LOCK:
        for folder in folders:
            try:
                mode = stat.S_IMODE(folder.stat().st_mode)
            except OSError:
                continue
            if mode & 0o007:
                os.chmod(folder, mode & ~0o007)
                _CHANGED_MODES.setdefault(folder, mode)
                changed.append(folder)
    return changed


def restore_modes() -> list[str]:
    """Give every folder :func:`make_private` changed its old mode back (idempotent);
    returns ``path: mode`` for each one restored."""
    restored = []
    with _MODES_LOCK:
        for folder, mode in list(_CHANGED_MODES.items()):
            with contextlib.suppress(OSError):
                os.chmod(folder, mode)
                restored.append(f"{folder}: {mode:o}")
            del _CHANGED_MODES[folder]
    return restored


@contextlib.contextmanager
def private_while_grading(folders: list[Path]) -> Iterator[None]:
    """Where no Landlock ruleset holds uid-level workers, the grader's ``folders`` (the
    assignment with its hidden tests, the output) are unreadable to other users while the
    batch runs: the change is said when made and undone, and said, when the batch ends."""
    if not folders or landlock_abi() > 0:
        yield
        return
    changed = make_private(folders)
    if changed:
        listed = ", ".join(f"{path} (was {mode:o})" for path, mode in _CHANGED_MODES.items())
        log.warning(f"[sandbox] uid level without Landlock: took access for other users off "
                    f"{listed} while grading, so that workers cannot read them; restored at the "
                    "end")
    try:
        yield
    finally:
        if restored := restore_modes():
            log.info(f"[sandbox] restored the mode of {', '.join(restored)}")
