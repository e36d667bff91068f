"""Errors a user can cause. The CLI prints their message on one line and exits 1."""


class LMError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug in lm)."""


class DataError(LMError):
    """Unreadable, empty or malformed text input (the message names the file and line)."""


class ModelFileError(LMError):
    """A model directory that is missing, incomplete, corrupt or of another format version."""


class TrainingError(LMError):
    """Training cannot go on (non-finite loss, untrainable activation, ...)."""


class MemoryLimitError(LMError):
    """A setting would need more memory than the machine has available (lm.memory)."""


class ClusterError(LMError):
    """Scoring on a cluster failed: Dask missing, the scheduler unreachable or gone, workers
    that cannot load the model or that kept dying (the message names the address)."""


class DeviceError(LMError):
    """A device (``--device``, ``LM_DEVICE``) that is unknown, or "cuda" where CuPy or a CUDA
    GPU is missing (``lm.backend.resolve``)."""
