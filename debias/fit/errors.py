"""The ways a fit stops early, each a type its caller can tell apart and explain."""

from __future__ import annotations

from pathlib import Path

from debias.errors import UserError


class NonFiniteLoss(UserError):
    """A model's loss, parameters or latents stopped being finite; raised before that epoch is checkpointed."""


class CompileFailed(UserError):
    """torch.compile (--compile) could not compile a model."""


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fit; str() says what the run folder keeps and how to resume it."""

    def __init__(self, run_dir: Path, message: str):
        super().__init__(message)
        self.run_dir = run_dir


def is_compile_error(exc: BaseException) -> bool:
    """Whether `exc` comes from torch.compile's machinery (dynamo, inductor, a missing C++ compiler)."""
    import torch._dynamo.exc  # imported only once a compiled model failed: it is slow to import

    kinds: list[type] = [torch._dynamo.exc.TorchDynamoException]  # BackendCompilerFailed, InductorError, ...
    try:
        import torch._inductor.exc as inductor_exc

        # A missing compiler can surface unwrapped when the backward pass compiles lazily.
        kinds += [inductor_exc.InvalidCxxCompiler, inductor_exc.CppCompileError]
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, tuple(kinds))
