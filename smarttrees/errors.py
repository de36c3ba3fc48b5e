"""The errors SmartTrees raises on purpose; the CLI prints them without a traceback."""


class SmartTreesError(Exception):
    """Base of every error meant for a person to read and act on."""


class ClusterError(SmartTreesError):
    """The managed local PostgreSQL cluster cannot be set up, started or reached."""


class MissingSoftwareError(ClusterError):
    """PostgreSQL or PostGIS is not installed; the message says what to install."""


class ArgumentError(SmartTreesError, ValueError):
    """An argument of the analyst API is not valid: the message names it and the valid values.

    Attributes
    ----------
    argument:
        The parameter's name, e.g. ``"commune"``.
    valid:
        The values it accepts (may be empty when they cannot be listed, e.g. tree codes).

    """

    def __init__(self, argument: str, message: str, valid: tuple[str, ...] = ()) -> None:
        self.argument = argument
        self.valid = valid
        text = f"{argument}: {message}"
        if valid:
            text += f"; valid: {', '.join(valid)}"
        super().__init__(text)

class BackupError(SmartTreesError):
    """A backup cannot be made, read or restored; nothing was changed."""


class ExportError(SmartTreesError):
    """A layer cannot be exported as asked; no file was written."""
