"""The sandbox with real processes: cells, calls, timeouts, crashes, limits, isolation.

bwrap tests need /usr/bin/bwrap (skipped with that reason otherwise); the limit tests that
rely on the uid drop need root (as on the grading machines).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autograder.core import catalogue
from autograder.core.errors import UsageError
from autograder.sandbox import (
    CallTimeout,
    CellStatus,
    Handle,
    NameKind,
    ProtocolError,
    SandboxLevel,
    SandboxUnavailable,
    StudentCodeError,
    WireError,
    WorkerDied,
    WorkerLimits,
    WorkerSession,
    WorkerSpec,
    WorkerStartError,
    choose_isolation,
    launcher,
    messages,
    packages,
    slots,
)
from autograder.sandbox import uid as uid_level

HAVE_BWRAP = os.access("/usr/bin/bwrap", os.X_OK)
IS_ROOT = os.geteuid() == 0
needs_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP, reason="bubblewrap missing at /usr/bin/bwrap (apt-get install bubblewrap)")
needs_root_bwrap = pytest.mark.skipif(
    not (HAVE_BWRAP and IS_ROOT), reason="needs bubblewrap and root (the uid drop)")
UID_PROBLEM = uid_level.uid_problem()
needs_uid = pytest.mark.skipif(UID_PROBLEM is not None, reason=f"uid level: {UID_PROBLEM}")
LEVELS = [pytest.param(SandboxLevel.BWRAP, marks=needs_bwrap),
          pytest.param(SandboxLevel.UID, marks=needs_uid), SandboxLevel.PROCESS]
PROJECT = Path(__file__).resolve().parent.parent

PROBES = '''
def count(obj):
    return obj.n

def shape_of(array):
    return tuple(array.shape)

def state(model):
    return model.state_dict()

def fails(x):
    secret_probe_line = 1
    return x.missing_attribute
'''


# The level of the tests that are about the worker, not about one level: the strongest here.
STRONGEST = choose_isolation("auto").level


def make_session(tmp_path: Path, level=STRONGEST, *, slot=0, probes=True,
                 watch=frozenset(), packages=None, **limits) -> WorkerSession:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    probes_file = None
    if probes:
        probes_file = tmp_path / "probes.py"
        probes_file.write_text(PROBES)
    spec = WorkerSpec(scratch_dir=scratch, probes_file=probes_file, level=level,
                      limits=WorkerLimits(**limits), slot=slot, interrupt_grace_s=1.0,
                      watch=frozenset(watch), packages=packages)
    return WorkerSession(spec)


def run(session, index, source, timeout_s=10.0):
    return session.run_cell(index, textwrap.dedent(source), timeout_s)


# ----------------------------------------------------------------------------- levels


def test_choose_isolation():
    assert choose_isolation("process").level is SandboxLevel.PROCESS
    expected = (SandboxLevel.BWRAP if launcher.bwrap_problem() is None
                else SandboxLevel.UID if UID_PROBLEM is None else SandboxLevel.PROCESS)
    assert choose_isolation("auto").level is expected
    with pytest.raises(UsageError, match="'auto' or one of bwrap, uid, process"):
        choose_isolation("docker")


def test_asking_for_unusable_bwrap_says_what_to_do(monkeypatch):
    monkeypatch.setattr(launcher, "bwrap_problem", lambda: "missing /usr/bin/bwrap")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        choose_isolation("bwrap")
    auto = choose_isolation("auto")
    assert auto.level is (SandboxLevel.UID if UID_PROBLEM is None else SandboxLevel.PROCESS)
    assert ("bwrap", "missing /usr/bin/bwrap") in auto.passed_over
    assert "not bwrap: missing /usr/bin/bwrap" in auto.one_line()


def test_auto_falls_to_the_process_level_naming_both_reasons(monkeypatch):
    monkeypatch.setattr(launcher, "bwrap_problem", lambda: "missing /usr/bin/bwrap")
    monkeypatch.setattr(uid_level, "uid_problem", lambda: "the grader does not run as root")
    auto = choose_isolation("auto")
    assert auto.level is SandboxLevel.PROCESS
    assert auto.as_dict()["stronger_levels_not_used"] == {
        "bwrap": "missing /usr/bin/bwrap", "uid": "the grader does not run as root"}
    with pytest.raises(SandboxUnavailable, match="does not run as root"):
        choose_isolation("uid")


def test_a_weaker_level_on_purpose_says_so():
    chosen = choose_isolation("process")
    assert dict(chosen.passed_over) == {"bwrap": "--sandbox process was asked for",
                                        "uid": "--sandbox process was asked for"}


def test_limits_are_validated():
    with pytest.raises(ValueError, match="WorkerLimits.max_processes"):
        WorkerLimits(max_processes=0)


# ----------------------------------------------------------------------------- cells


@pytest.mark.parametrize("level", LEVELS)
def test_cells_share_one_namespace_and_report_each_status(tmp_path, level):
    with make_session(tmp_path, level) as s:
        assert s.level is level and s.weak_isolation is (level is not SandboxLevel.BWRAP)
        ok = run(s, 0, "x = 41\nprint('hi', __name__)\nx + 1")
        assert ok.status is CellStatus.OK and ok.stdout_tail == "hi __main__\n42\n"
        quiet = run(s, 1, "x + 1;")
        assert quiet.stdout_tail == ""
        err = run(s, 2, "def f():\n    return 1 / 0\nprint('before')\nf()")
        assert err.status is CellStatus.ERROR and err.error_type == "ZeroDivisionError"
        assert err.stdout_tail == "before\n"
        assert 'File "<cell-2>", line 2, in f' in err.traceback
        assert "worker.py" not in err.traceback and "sandbox" not in err.traceback
        syntax = run(s, 3, "def broken(:\n    pass")
        assert syntax.status is CellStatus.ERROR and syntax.error_type == "SyntaxError"
        assert run(s, 4, "print(x)").stdout_tail == "41\n"


def test_magics_are_refused_not_run(tmp_path):
    with make_session(tmp_path) as s:
        cell = run(s, 0, "%%bash\ntouch /home/student/ran")
        assert cell.status is CellStatus.REFUSED and "%%bash" in cell.error_message
        mixed = run(s, 1, """\
            %matplotlib inline
            import os
            !touch ran
            if True:
                %time y = 1
            y = 2
            """)
        assert mixed.status is CellStatus.OK
        assert len(mixed.notes) == 3 and "`!touch ran` was not run" in mixed.notes[1]
        assert s.get("y", 5) == 2
        assert not (s.workdir / "ran").exists()
        # valid Python that merely starts a line with % is run unchanged
        assert run(s, 2, "z = (10\n  % 3)").status is CellStatus.OK
        assert s.get("z", 5) == 1


def test_system_exit_and_stdin_are_cell_errors(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        cell = run(s, 0, "import sys\nsys.exit(3)\nnever = 1")
        assert cell.status is CellStatus.ERROR and cell.error_type == "SystemExit"
        assert "exit(3)" in cell.error_message
        assert run(s, 1, "input('name? ')").error_type == "EOFError"  # stdin is /dev/null
        assert run(s, 2, "exit()").status is CellStatus.ERROR
        assert run(s, 3, "ok = 1").status is CellStatus.OK and s.restarts == 0


def test_os_exit_is_died_then_restart_replays_only_ok_cells(tmp_path):
    with make_session(tmp_path) as s:
        first_generation = s.generation
        run(s, 0, "open('log', 'a').write('A')\ndef f(v): return v * 2")
        assert run(s, 1, "open('log', 'a').write('E')\n1/0").status is CellStatus.ERROR
        died = run(s, 2, "import os\nopen('log', 'a').write('D')\nos._exit(7)")
        assert died.status is CellStatus.DIED and "кодом 7" in died.error_message
        after = run(s, 3, "print(f(21))")  # the restarted worker replayed cell 0 only
        assert after.status is CellStatus.OK and after.stdout_tail == "42\n"
        assert s.restarts == 1 and s.generation == first_generation + 1
        assert (s.workdir / "log").read_text() == "AEDA"


def test_segfault_is_died_with_a_description(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        died = run(s, 0, "import ctypes\nctypes.string_at(0)")
        assert died.status is CellStatus.DIED
        assert "ошибкой сегментации" in died.error_message
        assert "Fatal Python error" in died.stdout_tail  # faulthandler's report
        assert run(s, 1, "1").status is CellStatus.OK


@pytest.mark.parametrize("level", LEVELS)
def test_infinite_loop_times_out_and_the_session_continues(tmp_path, level):
    with make_session(tmp_path, level, probes=False) as s:
        run(s, 0, "base = 5")
        start = time.monotonic()
        cell = run(s, 1, "print('looping')\nwhile True:\n    pass", timeout_s=1.0)
        assert cell.status is CellStatus.TIMEOUT and cell.stdout_tail == "looping\n"
        assert time.monotonic() - start < 3.0
        assert run(s, 2, "print(base)").stdout_tail == "5\n"
        assert s.restarts == 0  # SIGINT was enough: the worker lives on


def test_loop_that_swallows_interrupts_is_killed_and_not_replayed(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        run(s, 0, "base = 5")
        cell = run(s, 1, """\
            open('log', 'a').write('T')
            while True:
                try:
                    while True:
                        pass
                except KeyboardInterrupt:
                    pass
            """, timeout_s=0.5)
        assert cell.status is CellStatus.TIMEOUT
        assert run(s, 2, "print(base)").stdout_tail == "5\n"
        assert s.restarts == 1
        assert (s.workdir / "log").read_text() == "T"


def test_a_cell_that_fails_on_replay_is_dropped_and_noted(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        run(s, 0, "import os\nassert not os.path.exists('flag')\nopen('flag', 'w').close()")
        run(s, 1, "kept = 1")
        assert run(s, 2, "import os\nos._exit(1)").status is CellStatus.DIED
        assert run(s, 3, "print(kept)").stdout_tail == "1\n"
        assert len(s.replay_notes) == 1 and "cell 0" in s.replay_notes[0]


def test_huge_output_is_truncated_and_fast(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        start = time.monotonic()
        cell = run(s, 0, """\
            import sys
            line = 'y' * 999 + '\\n'
            for _ in range(100_000):
                sys.stdout.write(line)
            print('END')
            """, timeout_s=30)
        elapsed = time.monotonic() - start
        assert cell.status is CellStatus.OK and cell.output_truncated
        assert len(cell.stdout_tail) == WorkerLimits().max_output_bytes
        assert cell.stdout_tail.endswith("yyy\nEND\n")
        assert elapsed < 10, elapsed
        print(f"100 MB printed in {elapsed:.2f} s")
        assert run(s, 1, "print('small')").stdout_tail == "small\n"


def test_memory_bomb_is_stopped_by_the_address_space_limit(tmp_path):
    with make_session(tmp_path, probes=False, address_space_bytes=1 << 30) as s:
        big = run(s, 0, "b = bytearray(2 * 2**30)")
        assert big.status is CellStatus.ERROR and big.error_type == "MemoryError"
        grow = run(s, 1, "chunks = []\nwhile True:\n    chunks.append(b'x' * 50_000_000)",
                   timeout_s=20)
        assert grow.status in (CellStatus.ERROR, CellStatus.DIED), grow
        assert run(s, 2, "chunks = None\nprint('alive')").stdout_tail == "alive\n"


# ----------------------------------------------------------------------------- calls


@pytest.mark.parametrize("level", LEVELS)
def test_call_timeout_then_next_call_works_and_old_handles_are_stale(tmp_path, level):
    with make_session(tmp_path, level, probes=False) as s:
        run(s, 0, """\
            import time
            class Box:
                def __init__(self): self.n = 1
            def slow(): time.sleep(1000)
            def add(a, b): return a + b
            box = Box()
            """)
        old = s.get("box", 5)
        assert isinstance(old, Handle) and old.type_name == "__main__.Box"
        start = time.monotonic()
        with pytest.raises(CallTimeout, match="1 s time limit"):
            s.call("slow", [], {}, timeout_s=1.0)
        assert time.monotonic() - start < 3.0
        assert s.call("add", [2, 3], {}, timeout_s=5) == 5
        assert s.restarts == 1
        with pytest.raises(StudentCodeError, match="earlier run of the notebook") as info:
            s.getattr(old, "n", 5)
        assert info.value.error_type == "StaleHandle"


def test_handles_round_trip_through_calls_and_probes(tmp_path):
    with make_session(tmp_path) as s:
        run(s, 0, """\
            class Counter:
                def __init__(self, n): self.n = n
                def inc(self, by=1):
                    self.n += by
                    return self.n
            def make(n): return Counter(n)
            def numbers():
                yield from range(3)
            def twice(c): return c.n * 2
            """)
        h = s.call("make", [10], {}, 5)
        assert isinstance(h, Handle) and h.worker_generation == s.generation
        inc = s.getattr(h, "inc", 5)
        assert isinstance(inc, Handle)
        assert s.call(inc, [], {"by": 5}, 5) == 15
        assert s.call("twice", [h], {}, 5) == 30
        assert s.probe("count", [h], {}, 5) == 15
        gen = s.call("numbers", [], {}, 5)
        assert isinstance(gen, Handle) and gen.type_name == "builtins.generator"
        assert s.call(s.getattr(gen, "__next__", 5), [], {}, 5) == 0
        import numpy as np
        assert s.probe("shape_of", [np.zeros((2, 3))], {}, 5) == (2, 3)


def test_student_errors_and_unknown_names(tmp_path):
    with make_session(tmp_path) as s:
        run(s, 0, "def bad(x):\n    raise ValueError(f'no {x}')")
        with pytest.raises(StudentCodeError) as info:
            s.call("bad", [3], {}, 5)
        assert info.value.error_type == "ValueError" and info.value.message == "no 3"
        assert "<cell-0>" in info.value.traceback and "worker.py" not in info.value.traceback
        with pytest.raises(StudentCodeError, match="not defined in the notebook"):
            s.call("nothing_here", [], {}, 5)
        with pytest.raises(StudentCodeError) as info:
            s.probe("fails", [1], {}, 5)
        assert info.value.error_type == "AttributeError"
        assert "secret_probe_line" not in info.value.traceback  # probe code stays hidden
        with pytest.raises(StudentCodeError, match="no function '_private'"):
            s.probe("_private", [], {}, 5)
        with pytest.raises(WireError, match="cannot send a value of type set"):
            s.call("bad", [{1}], {}, 5)  # refused before anything is sent
        assert s.restarts == 0


def test_a_result_over_the_message_cap_is_a_student_error(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = WorkerSpec(scratch, None, SandboxLevel.BWRAP if HAVE_BWRAP else
                      SandboxLevel.PROCESS, max_message_bytes=1 << 20)
    with WorkerSession(spec) as s:
        run(s, 0, "big = b'x' * 2_000_000")
        with pytest.raises(StudentCodeError, match="could not be sent back") as info:
            s.get("big", 5)
        assert info.value.error_type == "WireError"
        assert s.get("__name__", 5) == "__main__"


def test_describe_reports_kinds_signatures_and_sources(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        run(s, 0, """\
            import math
            def conv(x, w, stride=1):
                '''doc'''
                return x
            class Net:
                def __init__(self, width: int = 3):
                    self.width = width
            net = Net()
            n = 3
            """)
        info = s.describe(["conv", "Net", "net", "n", "math", "ghost"], 5)
        assert info["conv"].kind is NameKind.FUNCTION
        assert info["conv"].signature == "(x, w, stride=1)"
        assert info["conv"].source.startswith("def conv(x, w, stride=1):")
        assert info["Net"].kind is NameKind.CLASS and info["Net"].signature == "(width: int = 3)"
        assert info["Net"].source.startswith("class Net:")
        assert info["net"].kind is NameKind.OTHER and info["net"].type_name == "__main__.Net"
        assert info["n"].kind is NameKind.DATA and info["math"].kind is NameKind.MODULE
        assert info["ghost"].kind is NameKind.MISSING


def test_torch_models_through_probes(tmp_path):
    pytest.importorskip("torch")
    import torch

    with make_session(tmp_path) as s:
        cell = run(s, 0, """\
            import torch, sys
            torch.manual_seed(0)
            model = torch.nn.Linear(3, 2)
            def forward(x): return model(x)
            """, timeout_s=60)
        assert cell.status is CellStatus.OK, cell
        x = torch.ones(4, 3)
        y = s.call("forward", [x], {}, 10)
        assert type(y) is torch.Tensor and y.shape == (4, 2) and not y.requires_grad
        state = s.probe("state", [s.get("model", 5)], {}, 10)
        assert set(state) == {"weight", "bias"} and state["weight"].shape == (2, 3)
        assert torch.allclose(x @ state["weight"].T + state["bias"], y)


def test_worker_starts_without_heavy_imports(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        cell = run(s, 0, """\
            import sys
            print(sorted(m for m in ('numpy', 'torch', 'IPython', 'nbformat', 'subprocess')
                         if m in sys.modules))
            """)
        assert cell.stdout_tail == "[]\n"
        print(f"start-up to ready: {s.startup_seconds:.3f} s")
        assert s.startup_seconds < 2.0


# ----------------------------------------------------------------------------- isolation


@needs_bwrap
def test_files_outside_scratch_are_invisible_and_unwritable(tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    with make_session(tmp_path) as s:
        cell = run(s, 0, f"""\
            import os
            hidden = [p for p in ({str(PROJECT / 'solutions')!r}, {str(PROJECT / 'tests')!r},
                                  '/root/.bashrc', '/work/shared',
                                  {str(tmp_path / 'outside.txt')!r},
                                  {str(PROJECT / 'autograder' / 'grading' / 'pipeline.py')!r})
                      if os.path.exists(p)]
            unwritable = []
            for p in ('/x', '/usr/x', '/etc/x', '/home/x', '/opt/autograder/probes.py',
                      {str(PROJECT / '.venv' / 'x')!r}, {str(Path(launcher.__file__))!r}):
                try:
                    open(p, 'a').close()
                except OSError:
                    unwritable.append(p)
            open('here.txt', 'w').write('ok')
            open('/tmp/t.txt', 'w').write('ok')
            print(hidden, len(unwritable), os.getuid(), os.getcwd(), sorted(os.listdir('/')))
            """)
        assert cell.status is CellStatus.OK, cell
        hidden, rest = cell.stdout_tail.split("] ", 1)
        assert hidden == "["
        assert rest.split()[:3] == ["7", str(s.uid), "/home/student"]
        assert (tmp_path / "scratch" / "here.txt").read_text() == "ok"
        assert not (PROJECT / ".venv" / "x").exists()


LANDLOCK_ABI = uid_level.landlock_abi() if UID_PROBLEM is None else 0
needs_landlock = pytest.mark.skipif(
    LANDLOCK_ABI < 4, reason=f"uid level with Landlock ABI >= 4 (files and TCP) is not here "
    f"({UID_PROBLEM or f'Landlock ABI {LANDLOCK_ABI}'})")
# The levels that run the worker as a slot uid (bwrap only does so as root).
UID_LEVELS = [pytest.param(SandboxLevel.BWRAP, marks=needs_root_bwrap),
              pytest.param(SandboxLevel.UID, marks=needs_uid)]
# The levels that keep the worker off the network and the grader's files.
CONFINED_LEVELS = [pytest.param(SandboxLevel.BWRAP, marks=needs_bwrap),
                   pytest.param(SandboxLevel.UID, marks=needs_landlock)]


@needs_landlock
def test_uid_worker_reads_and_writes_only_its_own_and_the_interpreters(tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    os.chmod(tmp_path / "outside.txt", 0o644)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "given.txt").write_text("the submission's own file")
    with make_session(tmp_path, SandboxLevel.UID, packages=("numpy",)) as s:
        cell = run(s, 0, f"""\
            import os, tempfile
            unreadable = []
            for p in ({str(PROJECT / 'solutions' / '01_convolution_pooling' / 'tests' /
                           'conv2d.py')!r}, {str(PROJECT / 'tests' / 'test_sandbox.py')!r},
                      {str(tmp_path / 'outside.txt')!r}, {str(tmp_path / 'probes.py')!r},
                      {str(PROJECT / 'autograder' / 'grading' / 'pipeline.py')!r}, '/etc/passwd',
                      {str(PROJECT / "grader.py")!r}):
                try:
                    open(p).read()
                except PermissionError:
                    unreadable.append(p)
            unwritable = []
            for p in ('/tmp/x', '/dev/shm/x', {str(tmp_path / 'x')!r},
                      {str(PROJECT / '.venv' / 'x')!r}, {str(Path(launcher.__file__))!r}):
                try:
                    open(p, 'a').close()
                except PermissionError:
                    unwritable.append(p)
            open('here.txt', 'w').write('ok')
            with tempfile.NamedTemporaryFile('w') as t:
                t.write('ok')
            import numpy, json
            print(len(unreadable), len(unwritable), os.getuid(), open("given.txt").read())
            """)
        assert cell.status is CellStatus.OK, cell
        assert cell.stdout_tail.split(maxsplit=3) == [
            "7", "5", str(s.uid), "the submission's own file\n"], cell.stdout_tail
        run(s, 1, "class Counted:\n    n = 3\ncounted = Counted()")
        assert s.probe("count", [s.get("counted", 5)], {}, 5) == 3  # its trusted copy loads
    assert not (tmp_path / "x").exists() and not Path("/tmp/x").exists()


@pytest.mark.parametrize("level", CONFINED_LEVELS)
def test_network_is_unreachable(tmp_path, level):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        with make_session(tmp_path, level, probes=False) as s:
            cell = run(s, 0, f"""\
                import socket
                results = []
                for address in (('127.0.0.1', {port}), ('1.1.1.1', 53)):
                    try:
                        socket.create_connection(address, timeout=2).close()
                        results.append('connected')
                    except OSError as exc:
                        results.append(type(exc).__name__)
                print(results)
                """)
            assert cell.status is CellStatus.OK and "connected" not in cell.stdout_tail, cell
    finally:
        server.close()


@pytest.mark.parametrize("level", UID_LEVELS)
def test_killing_its_parent_does_not_reach_the_harness(tmp_path, level):
    with make_session(tmp_path, level, probes=False) as s:
        cell = run(s, 0, "import os\nos.kill(os.getppid(), 9)")
        assert cell.status is CellStatus.ERROR and cell.error_type == "PermissionError"
        cell = run(s, 1, "import os\nos.killpg(os.getpgid(os.getppid()), 9)")
        assert cell.status is CellStatus.ERROR, cell  # not its group: not found or refused
        assert cell.error_type in ("PermissionError", "ProcessLookupError"), cell
        cell = run(s, 2, "import os\nos.kill(-1, 9)")  # everything it may signal
        if level is SandboxLevel.BWRAP:  # alone in its pid namespace
            assert cell.error_type == "ProcessLookupError", cell
        else:  # the kernel reports success when every other process refused with EPERM
            assert cell.status is CellStatus.OK, cell
        assert run(s, 3, "print('back')").stdout_tail == "back\n"
    assert os.getpid() > 0  # we are still here


@pytest.mark.parametrize("level", UID_LEVELS)
def test_fork_storm_is_bounded_and_nothing_is_left_after_close(tmp_path, level):
    s = make_session(tmp_path, level, slot=7, probes=False, max_processes=16)
    uid = s.uid
    assert uid is not None
    try:
        cell = run(s, 0, """\
            import os, time, subprocess
            subprocess.Popen(['sleep', '300'])
            if os.fork() == 0:  # a daemon that leaves its session
                os.setsid()
                time.sleep(300)
                os._exit(0)
            children, error = 0, None
            for _ in range(200):
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = type(exc).__name__
                    break
                if pid == 0:
                    time.sleep(300)
                    os._exit(0)
                children += 1
            print(children, error)
            """, timeout_s=20)
        children, error = cell.stdout_tail.split()
        assert int(children) < 16 and error == "BlockingIOError"
        assert len(launcher.processes_of_uid(uid)) > 10
    finally:
        s.close()
    assert launcher.processes_of_uid(uid) == []


@pytest.mark.parametrize("level", UID_LEVELS)
def test_concurrent_sessions_never_share_a_uid(tmp_path, level):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with make_session(tmp_path / "a", level, slot=3, probes=False) as a, \
            make_session(tmp_path / "b", level, slot=3, probes=False) as b:
        assert a.uid is not None and b.uid is not None and b.uid != a.uid
        assert run(b, 0, "import os\nprint(os.getuid())").stdout_tail == f"{b.uid}\n"
        if level is SandboxLevel.UID:  # each private area is its own uid's alone
            cell = run(b, 1, f"import os\nprint(os.listdir({str(a._area.home)!r}))")
            assert cell.error_type == "PermissionError", cell


@needs_uid
def test_uid_level_leaves_no_private_area_behind(tmp_path):
    s = make_session(tmp_path, SandboxLevel.UID)
    area = s._area.root
    assert (area / "trusted" / "probes.py").read_text() == PROBES
    assert oct((area / "home").stat().st_mode & 0o777) == "0o700"
    assert (area / "home").stat().st_uid == s.uid
    s.close()
    assert not area.exists()


@pytest.mark.parametrize("level", LEVELS)
def test_close_leaves_no_worker_behind(tmp_path, level):
    s = make_session(tmp_path, level, probes=False)
    pid = s._worker.worker_pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    run(s, 0, "import subprocess\np = subprocess.Popen(['sleep', '300'])\nchild = p.pid")
    child = s.get("child", 5)
    if level is SandboxLevel.PROCESS:  # inside bwrap the pid is the namespace's own
        assert Path(f"/proc/{child}").exists()
    s.close()
    assert not slots.still_runs(pid)
    if level is SandboxLevel.PROCESS:
        assert not slots.still_runs(child)
    s.close()  # idempotent


# ----------------------------------------------------------------------------- protocol


FIND_REPLY_FD = """\
import os, struct
fd = int([a for a in open('/proc/self/cmdline').read().split('\\0')
          if a.startswith('--reply-fd=')][0].split('=')[1])
"""


def _forge(s, index, payload_code):
    """A cell that writes raw bytes to the worker's reply pipe (as hostile code could)."""
    write = "\nos.write(fd, struct.pack('>Q', len(payload)) + payload)"
    source = FIND_REPLY_FD + payload_code + write
    return s.run_cell(index, source, 10)


def test_forged_replies_reset_the_worker(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        run(s, 0, "kept = 'yes'\nimport os\ndef forge(data): os.write(fd, data)")
        wrong_id = _forge(s, 1, "from autograder.sandbox import messages\n"
                                "payload = messages.encode_message(messages.Value(999, 1))")
        assert wrong_id.status is CellStatus.DIED
        assert "does not answer request" in wrong_id.error_message
        garbage = _forge(s, 2, "payload = b'\\xc1'")
        assert garbage.status is CellStatus.DIED and "malformed" in garbage.error_message
        assert s.get("kept", 5) == "yes" and s.restarts == 2
        run(s, 3, FIND_REPLY_FD)
        with pytest.raises(ProtocolError, match="does not answer request"):  # calls raise
            payload = messages.encode_message(messages.Value(999, 1))
            s.call("forge", [struct.pack(">Q", len(payload)) + payload], {}, 5)
        assert s.get("kept", 5) == "yes"


def test_keyboard_interrupt_in_a_cell_is_interrupted(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        cell = run(s, 0, "raise KeyboardInterrupt")
        assert cell.status is CellStatus.INTERRUPTED and cell.error_type == "KeyboardInterrupt"
        assert run(s, 1, "print(1)").stdout_tail == "1\n" and s.restarts == 0


def test_an_oversized_reply_header_is_rejected_at_once(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        start = time.monotonic()
        cell = s.run_cell(0, FIND_REPLY_FD + "os.write(fd, struct.pack('>Q', 1 << 40))\n"
                          "import time\ntime.sleep(30)", 10)
        assert cell.status is CellStatus.DIED and "more than the cap" in cell.error_message
        assert time.monotonic() - start < 5
        assert run(s, 1, "print(2)").stdout_tail == "2\n"


@needs_bwrap
def test_a_worker_that_cannot_start_is_a_start_error(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = WorkerSpec(scratch, tmp_path / "missing_probes.py", SandboxLevel.BWRAP,
                      startup_timeout_s=5)
    with pytest.raises(WorkerStartError, match="Can't find source path"):
        WorkerSession(spec)


def test_worker_death_during_a_call_is_worker_died(tmp_path):
    with make_session(tmp_path, probes=False) as s:
        run(s, 0, "import os\ndef die(): os._exit(9)\nx = 3")
        with pytest.raises(WorkerDied, match="кодом 9"):
            s.call("die", [], {}, 5)
        assert s.get("x", 5) == 3


# ----------------------------------------------------------------------------- packages, records

SITE = launcher.package_view(("numpy",)).site_dir


@needs_bwrap
def test_packages_outside_the_assignment_are_not_inside_the_sandbox(tmp_path):
    with make_session(tmp_path, probes=False, packages=("numpy",)) as s:
        # The interpreter's own package folders (pyenv: <prefix>/lib/python3.11/site-packages;
        # Debian: /usr/lib/python3/dist-packages) are masked too: empty or absent inside.
        others = sorted({str(p) for pattern in (
            f"{sys.base_prefix}/lib/python3*/site-packages", *packages.OTHER_SITE_GLOBS)
            for p in map(Path, glob.glob(pattern)) if p.is_dir() and p != SITE})
        assert others, "no package folder of the base interpreter was found to check"
        cell = run(s, 0, f"""\
            import json, os
            print(sorted(os.listdir({str(SITE)!r}))[:200])
            print(json.dumps({{p: os.listdir(p) for p in {others!r} if os.path.isdir(p)}}))
            """)
        assert cell.status is CellStatus.OK, cell
        listed, base = cell.stdout_tail.splitlines()
        assert "'numpy'" in listed and "'torch'" not in listed and "'scipy'" not in listed
        assert not any(json.loads(base).values()), base  # every such folder empty inside
        cell = run(s, 1, "import torch\n")
        assert cell.status is CellStatus.ERROR and cell.error_type == "ModuleNotFoundError"
        assert "пакет torch недоступен в этом задании" in cell.error_message
        assert "numpy" in cell.error_message


def test_process_fallback_refuses_the_imports_it_cannot_hide(tmp_path):
    with make_session(tmp_path, SandboxLevel.PROCESS, probes=False, packages=("numpy",)) as s:
        assert run(s, 0, "import numpy\n").status is CellStatus.OK
        cell = run(s, 1, "import torch.nn\n")
        assert cell.status is CellStatus.ERROR, cell
        assert "пакет torch недоступен в этом задании" in cell.error_message


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("language", [None, "en"])
def test_the_worker_writes_in_the_graders_language(tmp_path, monkeypatch, level, language):
    """The grader's language (catalogue.current_language) reaches the worker through its clean
    environment at every level, with the translations of what the worker writes (it cannot
    read the catalogue): Russian by default, English when the grader runs in English."""
    pytest.importorskip("torch")
    monkeypatch.setattr(catalogue, "_language", language or catalogue.DEFAULT_LANGUAGE)
    with make_session(tmp_path, level, probes=False, packages=("numpy", "torch")) as s:
        cell = run(s, 0, "import os; print(os.environ.get('AUTOGRADER_LANGUAGE'))\n")
        assert cell.stdout_tail == f"{language or 'ru'}\n", cell
        cell = run(s, 1, "import scipy\n")  # the import guard's message, built in the worker
        assert cell.status is CellStatus.ERROR, cell
        with pytest.raises(StudentCodeError) as info:  # models.py's WeightsError
            s.probe("retrain_epoch", [], {}, 60, module="models")
    assert info.value.error_type == "WeightsError"
    if language == "en":
        assert cell.error_message == ("package scipy is not available in this assignment: "
                                      "here you may import the Python standard library and "
                                      "numpy, torch")
        assert info.value.message == "retraining has not been started"
    else:
        assert cell.error_message == ("пакет scipy недоступен в этом задании: здесь можно "
                                      "импортировать стандартную библиотеку Python и numpy, "
                                      "torch")
        assert info.value.message == "переобучение не начато"


@pytest.mark.parametrize("level", LEVELS)
def test_calls_carry_a_record_of_the_numpy_routines_they_reached(tmp_path, level):
    with make_session(tmp_path, level, probes=False, watch={"numpy"}) as s:
        cell = run(s, 0, """\
            import numpy as np
            def lib(a):
                return getattr(np, 'con' + 'volve')(a, a)
            def own(a):
                return np.array([a[:i + 1] @ a[i::-1] for i in range(len(a))])
            """)
        assert cell.status is CellStatus.OK, cell
        import numpy as np

        s.call("lib", [np.arange(3.0)], {}, 10)
        assert "numpy.convolve" in s.last_record.routines
        s.call("own", [np.arange(3.0)], {}, 10)
        assert s.last_record.routines == () and s.last_record.tampered == ()
        run(s, 1, "np.convolve = lambda a, v, mode='full': 0\n")
        s.call("lib", [np.arange(3.0)], {}, 10)
        assert "numpy.convolve" in s.last_record.routines  # put back, and noticed
        assert any("replaced" in item for item in s.last_record.tampered)


def test_calls_carry_a_record_of_the_torch_operators_they_dispatched(tmp_path):
    pytest.importorskip("torch")
    import torch

    with make_session(tmp_path, probes=False, watch={"torch"}) as s:
        cell = run(s, 0, """\
            import torch
            conv = torch.nn.Conv2d(1, 1, 3)
            def via_ops(x):
                return torch.ops.aten.convolution(x, conv.weight, None, [1, 1], [0, 0], [1, 1],
                                                  False, [0, 0], 1)
            def via_module(x):
                return conv(x)
            def matmul(x):
                return x.flatten(1) @ torch.ones(x[0].numel(), 2)
            """, timeout_s=60)
        assert cell.status is CellStatus.OK, cell
        x = torch.ones(1, 1, 5, 5)
        s.call("via_ops", [x], {}, 20)
        assert "aten.convolution" in s.last_record.routines
        s.call("via_module", [x], {}, 20)
        assert "aten.convolution" in s.last_record.routines
        assert "torch.nn.modules.conv.Conv2d" in s.last_record.modules
        s.call("matmul", [x], {}, 20)
        assert "aten.convolution" not in s.last_record.routines and s.last_record.routines


def test_slot_leases_hold_machine_wide_whatever_tmpdir_says(tmp_path, monkeypatch):
    """Graders started with different TMPDIRs must still never share a worker uid."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a"))
    (tmp_path / "a").mkdir()
    first = launcher.SlotLease.acquire(5)
    (tmp_path / "b").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "b"))
    second = launcher.SlotLease.acquire(5)
    try:
        assert first.uid != second.uid
    finally:
        first.release()
        second.release()


@needs_uid
def test_a_grader_copy_other_users_cannot_enter_is_refused_the_uid_level(tmp_path):
    """A copy of the grader (a student kit or Gradescope bundle unpacked in a private folder)
    once passed the uid probe because a slot uid's interpreter found *another* autograder, the
    venv's editable install: the workers ran that code and Landlock then refused its files
    ("internal grader error" for every test). The probe now checks which worker it imported."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(Path(uid_level.__file__).parents[2] / "autograder", private / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from autograder.sandbox import uid; print(uid.uid_problem())")
    done = subprocess.run([sys.executable, "-c", code, str(private)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "does not start as it does for the grader" in done.stdout, done.stdout
    assert str(private / "autograder" / "sandbox" / "worker.py") in done.stdout
