"""The errors SmartTrees raises on purpose; the CLI prints them without a traceback.

Each class names its ``rule``: a stable name a program can test (``bad_code``, ``bad_input``…).
The errors know nothing of HTTP: the API maps rules to statuses in one place
(:mod:`gis_api.errors`), the command line maps them to exit codes (:mod:`smarttrees.cli.failures`).
"""


class SmartTreesError(Exception):
    """Base of every error meant for a person to read and act on.

    Attributes
    ----------
    rule:
        The stable name of what was refused, set by each subclass.

    """

    rule = "refused"


class ClusterError(SmartTreesError):
    """The managed local PostgreSQL cluster cannot be set up, started or reached."""

    rule = "cluster"


class MissingSoftwareError(ClusterError):
    """PostgreSQL or PostGIS is not installed; the message says what to install."""

    rule = "missing_software"


class ArgumentError(SmartTreesError, ValueError):
    """An argument of the analyst API is not valid: the message names it and the valid values.

    Attributes
    ----------
    argument:
        The parameter's name, e.g. ``"commune"``.
    valid:
        The values it accepts (may be empty when they cannot be listed, e.g. tree codes).

    """

    rule = "invalid_argument"

    def __init__(self, argument: str, message: str, valid: tuple[str, ...] = ()) -> None:
        self.argument = argument
        self.valid = valid
        text = f"{argument}: {message}"
        if valid:
            text += f"; valid: {', '.join(valid)}"
        super().__init__(text)

class BackupError(SmartTreesError):
    """A backup cannot be made, read or restored; nothing was changed."""

    rule = "backup"


class ExportError(SmartTreesError):
    """A layer cannot be exported as asked; no file was written."""

    rule = "export"
