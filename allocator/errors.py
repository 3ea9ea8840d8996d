"""One hierarchy of errors; each also inherits the builtin a caller would expect."""


class AllocatorError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(AllocatorError, ValueError):
    """An argument is outside what is accepted; the message names the value and the accepted form."""


class InfeasibleError(AllocatorError, ValueError):
    """The request cannot be met (a budget below the minimums, pins above the budget, ...)."""


class SolverError(AllocatorError, RuntimeError):
    """A solver is missing, or failed in a way that left no usable answer."""


class RunFailedError(AllocatorError, RuntimeError):
    """Some tasks of a long run failed; the others completed and were written, so rerunning resumes."""
