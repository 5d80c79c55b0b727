"""What the names in a worker's call record mean: which routines convolve, pool or slide.

Harness side. The worker records ATen operators (``aten.convolution``), wrapped numpy routines
(``numpy.convolve``) and the nearest ``torch.nn`` class of every module that ran
(``torch.nn.modules.conv.Conv2d``); this module sorts them into families and applies an
assignment's allowed list (``allowed_routines = ["unfold"]``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.catalogue import N_, _

CONVOLUTION, POOLING, SLIDING_WINDOWS = "convolution", "pooling", "sliding_windows"
FAMILIES = (CONVOLUTION, POOLING, SLIDING_WINDOWS)
# each family's name for feedback (English, marked for the catalogue: translate where used)
FAMILY_TEXT = {CONVOLUTION: N_("convolution"), POOLING: N_("pooling"),
               SLIDING_WINDOWS: N_("sliding windows")}

# ATen operator names (after "aten.") by family, as prefixes.
_ATEN_PREFIXES: dict[str, tuple[str, ...]] = {
    CONVOLUTION: (
        "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_",
        "cudnn_convolution", "miopen_convolution", "miopen_depthwise_convolution",
        "mkldnn_convolution", "_slow_conv2d", "slow_conv", "thnn_conv",
        "_nnpack_spatial_convolution", "_conv_depthwise2d", "_mps_convolution",
        "mps_convolution", "_cudnn_convolution",
    ),
    POOLING: (
        "max_pool", "avg_pool", "adaptive_max_pool", "adaptive_avg_pool", "_adaptive_avg_pool",
        "fractional_max_pool", "max_unpool", "mkldnn_max_pool", "mkldnn_adaptive_avg_pool",
        "quantized_max_pool", "_max_pool", "lp_pool",
    ),
    # aten.as_strided is left out on purpose: autograd uses it for in-place writes into views,
    # which hand-written loops do legitimately.
    SLIDING_WINDOWS: ("im2col", "col2im", "unfold"),
}
_NUMPY: dict[str, str] = {
    "numpy.convolve": CONVOLUTION,
    "numpy.correlate": CONVOLUTION,
    "numpy.correlate2": CONVOLUTION,
    "numpy.as_strided": SLIDING_WINDOWS,
    "numpy.sliding_window_view": SLIDING_WINDOWS,
}
_MODULE_PREFIXES: dict[str, str] = {
    "torch.nn.modules.conv.": CONVOLUTION,
    "torch.nn.modules.pooling.": POOLING,
    "torch.nn.modules.fold.": SLIDING_WINDOWS,
}
# An allowed name in assignment.toml, and every recorded name it covers.
ALIASES: dict[str, frozenset[str]] = {
    "unfold": frozenset({"im2col", "col2im", "unfold", "unfold_backward", "Unfold", "Fold"}),
}


def family_of(recorded: str) -> str | None:
    """The family of a recorded routine or module name, or None when it does neither."""
    if recorded in _NUMPY:
        return _NUMPY[recorded]
    for prefix, family in _MODULE_PREFIXES.items():
        if recorded.startswith(prefix):
            return family
    namespace, _dot, op = recorded.partition(".")
    if namespace in ("aten", "prims", "mkldnn", "quantized"):
        for family, prefixes in _ATEN_PREFIXES.items():
            if op.startswith(prefixes):
                return family
    return None


def is_allowed(recorded: str, allowed: Iterable[str]) -> bool:
    """True when ``recorded`` is one of the routines the assignment explicitly allows."""
    base = recorded.rsplit(".", 1)[-1]
    for name in allowed:
        if base == name or recorded == name or base in ALIASES.get(name, ()):
            return True
    return False


def forbidden_in(recorded: Iterable[str], allowed: Iterable[str],
                 families: Iterable[str] = FAMILIES) -> list[str]:
    """The recorded names that belong to ``families`` and are not allowed, sorted."""
    wanted, allowed = set(families), tuple(allowed)
    return sorted(
        name for name in set(recorded)
        if family_of(name) in wanted and not is_allowed(name, allowed)
    )


def describe(recorded: str) -> str:
    """``aten.convolution`` -> ``torch: aten.convolution (convolution)`` for feedback (the
    family's name in the run's language)."""
    family = family_of(recorded)
    library = "numpy" if recorded.startswith("numpy.") else "torch"
    label = f" ({_(FAMILY_TEXT[family])})" if family else ""
    return f"{library}: {recorded}{label}"
