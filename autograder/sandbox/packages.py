"""Which installed packages a worker may see: the closure of an assignment's allowed list.

Trusted side only. For an assignment whose config says ``[sandbox] packages = [...]``, the
bubblewrap sandbox gets site-packages folders holding exactly those distributions, what they
require (recursively), and what the worker itself needs (msgpack); every other folder of
installed Python packages it could reach is an empty, read-only mount. A package that is not
mounted cannot be imported by any trick. Paths are real paths (symlinks resolved): the sandbox
binds the venv where it really is and starts the interpreter there (``launcher._interpreter``),
so these are the folders on the worker's ``sys.path``. The process fallback cannot hide
files, so it gets the list of top-level names to refuse instead (see :mod:`.imports`).
"""

from __future__ import annotations

import functools
import glob
import importlib.metadata as metadata
import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UsageError
from .wire import SandboxError

WORKER_NEEDS = ("msgpack",)  # the codec; everything else the worker uses is stdlib
# Always refused where they are installed and not allowed (they convolve or pool).
KNOWN_CONVOLVERS = ("torch", "torchvision", "scipy", "skimage", "cv2", "tensorflow", "jax",
                    "keras", "numba", "cupy", "astropy", "sklearn")
OTHER_SITE_GLOBS = (
    "/usr/lib/python3*/dist-packages",
    "/usr/lib/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages",
)


class PackageError(SandboxError, UsageError):
    """An allowed package is not installed here (the instructor's config or environment)."""


@dataclass(frozen=True)
class PackageView:
    """What the sandbox shows of the installed packages."""

    allowed: tuple[str, ...]  # the configured names, for messages
    site_dir: Path  # the venv's (or interpreter's) own site-packages, the first of site_dirs
    site_dirs: tuple[Path, ...]  # every site-packages on sys.path: emptied, entries bound back
    entries: tuple[Path, ...]  # files and folders inside site_dirs to bind back
    masked_dirs: tuple[Path, ...]  # other package folders: replaced by empty ones
    blocked: tuple[str, ...]  # installed top-level names that are not allowed


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution) -> list[str]:
    """Names this distribution requires (markers evaluated here, extras left out)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in dist.requires or ():
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is not None and not marker.evaluate({"extra": ""}):
            continue
        names.append(requirement.name)
    return names


def closure(names: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The distributions ``names`` need, recursively, keyed by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = _canonical(pending.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in map(_canonical, names):
                raise PackageError(
                    f"package {name!r} is allowed by the assignment but not installed in "
                    f"{sys.prefix}; install it or remove it from [sandbox] packages"
                ) from None
            continue  # an optional dependency that is absent: nothing to bind
        found[name] = dist
        pending.extend(_requirements(dist))
    return found


def site_dirs() -> tuple[Path, ...]:
    """The site-packages folders of this interpreter, real paths, its own (the venv's) first.

    A venv made with ``--system-site-packages`` adds the base interpreter's folders.
    """
    paths = sysconfig.get_paths()
    found: list[Path] = []
    for name in (paths["purelib"], paths["platlib"], *site.getsitepackages()):
        path = Path(name).resolve()
        if path.is_dir() and path not in found:
            found.append(path)
    if not found:
        raise PackageError(
            f"the interpreter {sys.executable} has no site-packages folder "
            f"({paths['purelib']}); run the grader from the project's virtual environment "
            "(make test creates .venv)"
        )
    return tuple(found)


def _top_entries(dist: metadata.Distribution, dirs: tuple[Path, ...]) -> set[Path]:
    """What a distribution installed directly inside its site-packages folder (real paths).

    A distribution installed anywhere else (an egg, a folder on PYTHONPATH) cannot be shown
    on its own, so it is refused with what to do rather than silently left out.
    """
    location = Path(str(dist.locate_file(""))).resolve()
    if location not in dirs:
        name = dist.metadata["Name"]
        raise PackageError(
            f"package {name!r} is installed in {location}, outside the site-packages folders "
            f"the sandbox can show ({', '.join(map(str, dirs))}); install it into the grader's "
            f"virtual environment (`{sys.executable} -m pip install {name}`) or grade with "
            "--sandbox process (weaker isolation)"
        )
    entries = set()
    for file in dist.files or ():
        parts = Path(str(file)).parts
        if parts and parts[0] not in ("..", "__pycache__"):
            entries.add(location / parts[0])
    path = getattr(dist, "_path", None)  # the .dist-info folder (importlib.metadata's own)
    if path is not None:
        entries.add(location / Path(path).name)
    return entries


def _installed_top_levels(dirs: tuple[Path, ...]) -> set[str]:
    names = set()
    for site_dir in dirs:
        for entry in site_dir.iterdir():
            stem = entry.name.split(".")[0]
            if stem and not entry.name.endswith((".dist-info", ".egg-info", ".pth")):
                names.add(stem)
    return names


def _other_site_dirs(dirs: tuple[Path, ...]) -> tuple[Path, ...]:
    patterns = [f"{sys.base_prefix}/lib/python3*/site-packages", *OTHER_SITE_GLOBS]
    found = {Path(p).resolve() for pattern in patterns for p in glob.glob(pattern)}
    return tuple(sorted(d for d in found if d.is_dir() and d not in dirs))


@functools.cache
def package_view(allowed: tuple[str, ...]) -> PackageView:
    """The sandbox's view of the packages for an allowed list (computed once per list)."""
    dirs = site_dirs()
    dists = closure(tuple(allowed) + WORKER_NEEDS)
    entries: set[Path] = set()
    for dist in dists.values():
        entries |= _top_entries(dist, dirs)
    visible = {entry.name.split(".")[0] for entry in entries}
    installed = _installed_top_levels(dirs) | {
        name for name in KNOWN_CONVOLVERS if name not in visible
    }
    blocked = sorted(installed - visible - set(sys.stdlib_module_names))
    return PackageView(
        allowed=tuple(allowed),
        site_dir=dirs[0],
        site_dirs=dirs,
        entries=tuple(sorted(e for e in entries if e.exists())),
        masked_dirs=_other_site_dirs(dirs),
        blocked=tuple(blocked),
    )


def bwrap_args(view: PackageView) -> list[str]:
    """bubblewrap arguments that show only the view's packages (after the venv is bound)."""
    args: list[str] = []
    for site_dir in view.site_dirs:
        args += ["--perms", "0755", "--tmpfs", str(site_dir)]
        for entry in view.entries:
            if entry.parent == site_dir:
                args += ["--ro-bind", str(entry), str(entry)]
        args += ["--remount-ro", str(site_dir)]
    for folder in view.masked_dirs:
        args += ["--perms", "0755", "--tmpfs", str(folder), "--remount-ro", str(folder)]
    return args
