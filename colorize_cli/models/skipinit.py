"""Building a network only to load weights into it, without paying for its random init.

``nn.Module`` constructors fill every weight with random numbers (ConvNeXt-L's truncated normal
alone takes seconds on a CPU) that ``load_state_dict`` overwrites at once. Inside
:func:`skip_random_init` those fills do nothing and the tensors keep whatever memory they got:
use it only when every parameter and buffer is then loaded (:func:`all_tensors_loaded` checks
that no buffer lies outside the state dict; a parameter outside it is a load_state_dict error).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


class _SkipRandomInit(TorchFunctionMode):
    # A mode's handler sees only the outermost call (nested calls run without the mode), so both
    # the init functions and the tensor methods that code calls by itself (timm-style
    # trunc_normal_: uniform_ then erfinv_) are listed.
    SKIPPED = frozenset({
        torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.erfinv_,
        torch.nn.init.uniform_, torch.nn.init.normal_, torch.nn.init.trunc_normal_,
        torch.nn.init.kaiming_uniform_, torch.nn.init.kaiming_normal_,
        torch.nn.init.xavier_uniform_, torch.nn.init.xavier_normal_, torch.nn.init.orthogonal_,
    })  # fmt: skip

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func in self.SKIPPED:
            return args[0] if args else (kwargs or {}).get("tensor")
        return func(*args, **(kwargs or {}))


def skip_random_init() -> TorchFunctionMode:
    """A context manager in which weight initialisers leave tensors as they are."""
    return _SkipRandomInit()


def all_tensors_loaded(model: nn.Module) -> bool:
    """True when every buffer of the model is in its state dict (so loading one sets them all)."""
    saved = set(model.state_dict())
    return all(name in saved for name, _ in model.named_buffers())
