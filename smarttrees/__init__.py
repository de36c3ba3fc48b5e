"""SmartTrees core: settings, database, the managed local PostGIS, schema and domain vocabulary."""

__version__ = "0.1.0"
