"""The one exception type for user mistakes.

The library raises :class:`HarError` with a message that names the file or option at fault and
the fix; ``cli.py`` prints it as one line on stderr and exits with code 2. Bugs raise anything
else and keep their traceback.
"""


class HarError(Exception):
    """A user mistake: bad input file, bad option value, missing package or device."""

    exit_code = 2
