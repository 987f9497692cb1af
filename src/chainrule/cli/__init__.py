"""The ``chainrule`` command line (typer).

Every user error (a bad file, an unknown option value, shapes that do not fit) ends with a one-line
message on stderr and exit code 2, never a traceback; a bug ends with ``internal error: ...`` and
exit code 1, its traceback saved to a file (``app``).
"""

from .app import app, fail, main, user_errors
# Importing a module registers its commands; this order is the order of `chainrule --help`.
from . import lecture  # noqa: F401,I001
from . import training  # noqa: F401
from . import scoring  # noqa: F401
from . import export  # noqa: F401
from . import info  # noqa: F401
from . import convert  # noqa: F401
from . import playground  # noqa: F401
from .lecture import _xor_model_and_data
from .app import plot_app, short_helps

short_helps(app, plot_app)

__all__ = ["app", "main", "fail", "user_errors", "_xor_model_and_data"]
