"""User-facing errors.

Every problem caused by the user's input (a file, an option, a run directory) is raised as a
:class:`DifflabError` whose message is one line that names the input and what was expected, e.g.
``data.csv: column 'age' has 3 missing values``. The CLI prints it as ``error: <message>`` and exits
with status 2, without a traceback.
"""


class DifflabError(Exception):
    """A problem with the user's input; the message is shown to the user as is."""


class DataError(DifflabError):
    """Bad data: unreadable file, non-numeric or non-finite values, wrong width, too few rows."""


class ConfigError(DifflabError):
    """An unknown name or an invalid value in a config or on the command line."""


class UnworkableConfig(ConfigError):
    """Valid names and values that cannot work together (e.g. ε-prediction with zero terminal SNR); the message
    says why. A sweep records such a cell as refused instead of stopping."""


class RunDirError(DifflabError):
    """A run directory that is missing, incomplete or corrupt."""


class FallbackWarning(UserWarning):
    """A fast path (a CUDA graph, batched GPU training, sampling on the GPU) failed and difflab went on with the
    slower path that computes the same thing; the message names the cause and how to skip the attempt."""
