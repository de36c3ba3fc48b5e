"""The errors SmartTrees raises on purpose; the CLI prints them without a traceback."""


class SmartTreesError(Exception):
    """Base of every error meant for a person to read and act on."""


class ClusterError(SmartTreesError):
    """The managed local PostgreSQL cluster cannot be set up, started or reached."""


class MissingSoftwareError(ClusterError):
    """PostgreSQL or PostGIS is not installed; the message says what to install."""
