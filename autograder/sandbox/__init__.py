"""The sandbox: the only code that runs student notebooks, and the codec that crosses over.
Imports nothing else of the grader (the worker imports this package inside the sandbox);
``devices`` says which GPU nodes a worker may see.

Public surface::

    isolation = choose_isolation("auto")
    spec = WorkerSpec(scratch_dir=..., probes_file=..., level=isolation.level,
                      limits=WorkerLimits())
    with WorkerSession(spec) as session:
        outcome = session.run_cell(0, source, timeout_s=60)      # -> CellOutcome
        value = session.call("conv2d", [x, w], {}, timeout_s=10)  # data or Handle

Names are imported on first use: the worker imports this package too, inside the sandbox,
and must not pay for the trusted side's modules (subprocess, threading, ...) at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "launcher": ("Isolation", "SandboxLevel", "SandboxUnavailable", "WorkerLimits",
                 "choose_isolation"),
    "messages": ("CellStatus", "NameKind", "ProtocolError"),
    "session": ("CallRecord", "CallTimeout", "CellOutcome", "ConfinementFailed", "NameInfo",
                "StudentCodeError",
                "StudentFault", "WorkerDied", "WorkerSession", "WorkerSpec", "WorkerStartError"),
    "wire": ("Caps", "Handle", "SandboxError", "WireError", "decode", "encode", "read_frame",
             "write_frame"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CallRecord",
    "CallTimeout",
    "Caps",
    "CellOutcome",
    "CellStatus",
    "ConfinementFailed",
    "Handle",
    "Isolation",
    "NameInfo",
    "NameKind",
    "ProtocolError",
    "SandboxError",
    "SandboxLevel",
    "SandboxUnavailable",
    "StudentCodeError",
    "StudentFault",
    "WireError",
    "WorkerDied",
    "WorkerLimits",
    "WorkerSession",
    "WorkerSpec",
    "WorkerStartError",
    "choose_isolation",
    "decode",
    "encode",
    "read_frame",
    "write_frame",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .launcher import (
        Isolation,
        SandboxLevel,
        SandboxUnavailable,
        WorkerLimits,
        choose_isolation,
    )
    from .messages import CellStatus, NameKind, ProtocolError
    from .session import (
        CallRecord,
        CallTimeout,
        CellOutcome,
        ConfinementFailed,
        NameInfo,
        StudentCodeError,
        StudentFault,
        WorkerDied,
        WorkerSession,
        WorkerSpec,
        WorkerStartError,
    )
    from .wire import (
        Caps,
        Handle,
        SandboxError,
        WireError,
        decode,
        encode,
        read_frame,
        write_frame,
    )
