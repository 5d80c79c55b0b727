"""Peak disk use while one zip submission is graded: a zip bomb and an honest large zip.

Grades each zip alone through ``grader.py grade`` (01, the reference notebook inside) with a
private TMPDIR, and samples, every 50 ms, the bytes under that TMPDIR (the work folder: the
extracted files, the worker's folder) plus the uid level's private areas (a copy of the
worker's folder each). Prints the peak per zip and level.

    python bench/zip_disk.py [--root CHECKOUT] [--levels bwrap,uid]

``--root`` grades with another checkout's grader (e.g. a worktree of an older commit), so
the same zips can be measured before and after a change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import nbformat  # noqa: E402
from local_run import built  # noqa: E402

NAME = "01_convolution_pooling"
HOMES = Path(f"/tmp/autograder-sandbox-homes-{os.geteuid()}")  # the uid level's areas


def _bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def make_zips(folder: Path) -> dict[str, Path]:
    """The bomb (200 MiB of zeros in about 200 KB) and an honest zip (60 MiB of noise)."""
    notebook = nbformat.writes(built(NAME).reference_notebook)
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"work/{NAME}.ipynb", notebook)
        with zf.open("work/data.bin", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(bytes(2**20))
    honest = folder / "honest.zip"
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"work/{NAME}.ipynb", notebook)
        zf.writestr("work/saved.bin", os.urandom(60 * 2**20))
    return {"bomb": bomb, "honest": honest}


def peak(grader_root: Path, archive: Path, level: str) -> tuple[int, str]:
    """Peak bytes on disk while ``archive`` is graded at ``level``, and its gradebook row."""
    with tempfile.TemporaryDirectory(prefix="zip-disk-") as base:
        tmp, out = Path(base) / "tmp", Path(base) / "out"
        tmp.mkdir()
        highest, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                highest[0] = max(highest[0], _bytes(tmp) + _bytes(HOMES))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        subprocess.run([sys.executable, str(grader_root / "grader.py"), "grade", "--assignment",
                        NAME, str(archive), "--out", str(out), "--sandbox", level],
                       capture_output=True, text=True, timeout=900, check=False,
                       env={**os.environ, "PYTHONPATH": str(grader_root), "TMPDIR": str(tmp)})
        stop.set()
        sampler.join()
        rows = (out / "gradebook.csv").read_text(encoding="utf-8").splitlines()
        return highest[0], rows[1][:160] if len(rows) > 1 else "(no gradebook row)"


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--levels", default="bwrap,uid")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="zips-"))
    try:
        zips = make_zips(folder)
        for name, archive in zips.items():
            for level in args.levels.split(","):
                used, row = peak(args.root.resolve(), archive, level)
                print(f"{name:7} ({archive.stat().st_size / 2**10:8.0f} KiB) at {level:5}: "
                      f"peak {used / 2**20:6.1f} MiB on disk; {row}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
