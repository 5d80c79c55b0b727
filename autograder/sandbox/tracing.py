"""What a graded call ran, recorded inside the worker: library routines, torch modules, tampering.

Runs inside the sandbox, next to the student's code, so its record is evidence, not proof: a
determined student can switch it off. The harness treats a recorded hit as decisive and the
absence of hits as "nothing seen"; signs that the recorder was disturbed travel in the record
as ``tampered`` and become review flags.

Three recorders, all inert outside a graded call:

- numpy: the routines that do a convolution or sliding windows for the student are replaced,
  before the first cell runs, by wrappers that note the call (every module that exports them,
  the C-level ``correlate`` / ``correlate2`` included). A wrapper found replaced when a call
  starts is put back, and the replacement is noted as tampering.
- torch: a ``TorchDispatchMode`` is entered for the call; it sees every ATen operator whatever
  Python name led to it (``F.conv2d``, ``nn.Conv2d``, ``torch.ops.aten``, ``torch._C``). A
  global forward pre-hook notes the nearest ``torch.nn`` class of every module that ran.
- process: an audit hook notes numpy modules re-executed (``importlib.reload``), native code
  loaded (ctypes) and processes started during the call; a wrapper of
  ``_thread.start_new_thread`` notes threads (a dispatch mode does not follow them).
- the notebook's own code: the worker's ``check`` (see ``definitions.py``) runs at the end of
  every call (and the worker after every cell) and notes graded code swapped since its cell
  ran; the recorder notes being switched off (``active`` cleared, its sets replaced).

Start-up stays light: numpy and torch are imported at :meth:`Recorder.install`, which the
worker calls before the first cell, and only when the assignment asks for them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# (module, attribute) pairs that export numpy's convolution / sliding-window routines.
NUMPY_PATCH_POINTS: tuple[tuple[str, str], ...] = tuple(
    (module, attr)
    for module, attrs in (
        ("numpy", ("convolve", "correlate")),
        ("numpy._core.numeric", ("convolve", "correlate")),
        ("numpy.core.numeric", ("convolve", "correlate")),
        ("numpy._core.multiarray", ("correlate", "correlate2")),
        ("numpy.core.multiarray", ("correlate", "correlate2")),
        ("numpy._core._multiarray_umath", ("correlate", "correlate2")),
        ("numpy.core._multiarray_umath", ("correlate", "correlate2")),
        ("numpy.lib.stride_tricks", ("as_strided", "sliding_window_view")),
        ("numpy.lib._stride_tricks_impl", ("as_strided", "sliding_window_view")),
    )
    for attr in attrs
)
AUDIT_EVENTS = {
    "ctypes.dlopen": "native code was loaded (ctypes)",
    "subprocess.Popen": "a process was started",
    "os.system": "a shell command was run",
    "os.posix_spawn": "a process was started",
    "os.exec": "a program was executed",
    "os.fork": "the process forked",
}
MAX_ENTRIES = 200  # per list in one record


class Recorder:
    """Records what graded calls reach; one per worker process."""

    def __init__(self, watch: frozenset[str],
                 check: Callable[[], list[str]] | None = None):
        self.watch = watch
        self.check = check  # the worker's own tampering check, run at the end of every call
        self.active = False
        self.routines: set[str] = set()
        self.modules: set[str] = set()
        self.tampered: set[str] = set()
        self._installed = False
        self._wrappers: dict[tuple[str, str], Any] = {}  # patch point -> our wrapper
        self._originals: dict[int, Any] = {}  # id(wrapper) -> original
        self._numpy_dir: str | None = None
        self._numpy_files: set[str] = set()  # numpy source files executed so far
        self._mode_class: type | None = None
        self._torch_names: dict[type, str] = {}

    # ------------------------------------------------------------------ set-up

    def install(self) -> None:
        """Import what is watched and put the recorders in place (idempotent)."""
        if self._installed or not self.watch:
            return
        self._installed = True
        sys.addaudithook(self._audit)
        self._wrap_threads()
        if "numpy" in self.watch:
            self._install_numpy()
        if "torch" in self.watch:
            self._install_torch()

    def _install_numpy(self) -> None:
        try:
            import numpy
            import numpy.lib.stride_tricks  # noqa: F401 - makes the patch points exist
        except ImportError:
            return  # not available in this assignment: nothing to watch
        self._numpy_dir = numpy.__file__.rsplit("/", 1)[0] + "/"
        self._numpy_files = {
            m.__file__ for m in list(sys.modules.values())
            if isinstance(getattr(m, "__file__", None), str)
            and m.__file__.startswith(self._numpy_dir)
        }
        self._patch_numpy(note=False)

    def _patch_numpy(self, *, note: bool) -> None:
        by_original: dict[int, Any] = {}
        for point in NUMPY_PATCH_POINTS:
            module = sys.modules.get(point[0])
            current = getattr(module, point[1], None) if module is not None else None
            if current is None:
                continue
            ours = self._wrappers.get(point)
            if ours is not None and current is ours:
                continue
            if ours is not None and note:
                self.tampered.add(f"{point[0]}.{point[1]} was replaced by the notebook")
            original = self._originals.get(id(current), current)
            wrapper = by_original.get(id(original))
            if wrapper is None:
                wrapper = self._existing_wrapper_of(original) or self._wrap(point[1], original)
                by_original[id(original)] = wrapper
            setattr(module, point[1], wrapper)
            self._wrappers[point] = wrapper

    def _existing_wrapper_of(self, original: Any) -> Any:
        for wrapper in self._wrappers.values():
            if self._originals.get(id(wrapper)) is original:
                return wrapper
        return None

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self
        routine = f"numpy.{name}"

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if recorder.active:
                recorder.routines.add(routine)
            return original(*args, **kwargs)

        wrapper.__name__ = getattr(original, "__name__", name)
        wrapper.__qualname__ = getattr(original, "__qualname__", name)
        wrapper.__doc__ = getattr(original, "__doc__", None)
        wrapper.__module__ = getattr(original, "__module__", "numpy")
        self._originals[id(wrapper)] = original
        return wrapper

    def _install_torch(self) -> None:
        try:
            import torch
            from torch.utils._python_dispatch import TorchDispatchMode
        except ImportError:
            return
        recorder = self

        class _Record(TorchDispatchMode):
            @classmethod
            def _should_skip_dynamo(cls) -> bool:
                # torch would wrap __torch_dispatch__ in a dynamo "disable", whose first call
                # imports torch._dynamo (about 1 s per worker); this mode never compiles.
                return False

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
                if recorder.active:
                    recorder.routines.add(f"{func.namespace}.{func.overloadpacket.__name__}")
                return func(*args, **(kwargs or {}))

        self._mode_class = _Record
        torch.nn.modules.module.register_module_forward_pre_hook(self._module_ran)

    def _module_ran(self, module: Any, inputs: Any) -> None:
        if not self.active:
            return
        cls = type(module)
        name = self._torch_names.get(cls)
        if name is None:
            name = next(
                (f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__
                 if c.__module__.startswith("torch.nn.")),
                "",
            )
            self._torch_names[cls] = name
        if name and len(self.modules) < MAX_ENTRIES:
            self.modules.add(name)

    def _wrap_threads(self) -> None:
        import _thread

        original = _thread.start_new_thread
        recorder = self

        def start_new_thread(*args: Any, **kwargs: Any) -> Any:
            if recorder.active:
                recorder.tampered.add("a thread was started during the call")
            return original(*args, **kwargs)

        _thread.start_new_thread = start_new_thread
        threading = sys.modules.get("threading")
        if threading is not None and hasattr(threading, "_start_new_thread"):
            threading._start_new_thread = start_new_thread

    def _audit(self, event: str, args: tuple) -> None:
        if event == "exec" and self._numpy_dir is not None and args:
            filename = getattr(args[0], "co_filename", "")
            if isinstance(filename, str) and filename.startswith(self._numpy_dir):
                if filename in self._numpy_files and self.active:  # a reload, not an import
                    self.tampered.add(
                        f"numpy code was re-executed ({filename.rsplit('/', 1)[-1]})"
                    )
                self._numpy_files.add(filename)
            return
        if self.active and event in AUDIT_EVENTS:
            self.tampered.add(AUDIT_EVENTS[event])

    # ------------------------------------------------------------------ one call

    def record(self, fn: Callable[[], Any]) -> tuple[Any, dict[str, list[str]]]:
        """Run ``fn`` with the recorders on; return its result and what was seen.

        Exceptions from ``fn`` propagate with the record attached as ``exc.call_record``.
        """
        if not self._installed:
            return fn(), empty_record()
        self.routines, self.modules, self.tampered = set(), set(), set()
        if self._numpy_dir is not None:
            self._patch_numpy(note=True)
        mode = self._enter_mode()
        self.active = True
        try:
            result = fn()
        except BaseException as exc:
            self._finish(mode)
            try:
                exc.call_record = _SNAPSHOT(self)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - an exception type that refuses attributes
                pass
            raise
        self._finish(mode)
        return result, _SNAPSHOT(self)

    def _enter_mode(self) -> Any:
        if self._mode_class is None or "torch" not in sys.modules:
            return None
        mode = self._mode_class()
        mode.__enter__()
        return mode

    def _finish(self, mode: Any) -> None:
        if self.active is not True:
            self.tampered.add("the recorder was switched off during the call")
        self.active = False
        for name in ("routines", "modules", "tampered"):
            if type(getattr(self, name)) is not set:  # replaced by one that forgets
                setattr(self, name, set())
                self.tampered.add(f"the recorder's {name} were replaced during the call")
        self._run_check()
        if mode is None:
            return
        try:
            from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

            if mode not in _get_current_dispatch_mode_stack():
                self.tampered.add("the operator record was switched off during the call")
                return
            mode.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - the mode stack was rearranged by the notebook
            self.tampered.add("the operator record was switched off during the call")

    def _run_check(self) -> None:
        if self.check is None:
            return
        try:
            self.tampered.update(self.check())
        except Exception as exc:  # noqa: BLE001 - the notebook's objects may refuse anything
            self.tampered.add(f"the notebook's definitions could not be checked "
                              f"({type(exc).__name__})")

    def snapshot(self) -> dict[str, list[str]]:
        """The current record as plain data (sorted, capped)."""
        return {
            "routines": sorted(self.routines)[:MAX_ENTRIES],
            "modules": sorted(self.modules)[:MAX_ENTRIES],
            "tampered": sorted(self.tampered)[:MAX_ENTRIES],
        }


# Taken when this module is imported: a notebook that patches the class changes nothing here.
_SNAPSHOT = Recorder.snapshot


def empty_record() -> dict[str, list[str]]:
    """A record of nothing seen."""
    return {"routines": [], "modules": [], "tampered": []}
