"""Carbon of the trees: refreshes the SQL computation of migration 0010 when its inputs change.

The equations live in SQL (``smarttrees.tree_carbon``, see the migration and the README's
"Carbon" section); this module writes the settings they take (carbon fraction, Chave's E) and
refreshes the materialised views when the trees, the settings, the species' wood densities or
the species-specific equations differ from what they were computed from.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from smarttrees.settings import Settings, get_settings

CO2_PER_C = 44.0 / 12.0  # molar masses: CO₂ / C

# Refreshed in this order: the height models feed tree_carbon, which the commune sums add up.
_VIEWS = ("species_height_models", "tree_carbon", "tree_carbon_by_commune",
          "tree_carbon_version")


def write_parameters(conn: psycopg.Connection, settings: Settings | None = None) -> None:
    """Store the carbon fraction and E of the settings where the SQL reads them."""
    settings = settings or get_settings()
    conn.execute(
        "INSERT INTO smarttrees.carbon_parameters (carbon_fraction, chave_e) VALUES (%s, %s) "
        "ON CONFLICT (singleton) DO UPDATE SET carbon_fraction = EXCLUDED.carbon_fraction, "
        "chave_e = EXCLUDED.chave_e, updated_at = now() "
        "WHERE (carbon_parameters.carbon_fraction, carbon_parameters.chave_e) "
        "IS DISTINCT FROM (EXCLUDED.carbon_fraction, EXCLUDED.chave_e)",
        [settings.carbon_fraction, settings.carbon_chave_e],
    )


def is_fresh(conn: psycopg.Connection) -> bool:
    """True when tree_carbon was computed from the current trees, settings and equations."""
    populated = conn.execute(
        "SELECT relispopulated FROM pg_class WHERE oid = 'smarttrees.tree_carbon_version'::regclass"
    ).fetchone()
    if not populated or not populated[0]:
        return False
    row = conn.execute(
        "SELECT (SELECT row(v.*) FROM smarttrees.tree_carbon_version v) "
        "IS NOT DISTINCT FROM (SELECT row(i.*) FROM smarttrees.carbon_inputs i)"
    ).fetchone()
    return bool(row and row[0])


def refresh(
    conn: psycopg.Connection, settings: Settings | None = None, *, force: bool = False
) -> float | None:
    """Recompute the carbon of every tree if its inputs changed (or ``force``).

    Parameters
    ----------
    conn:
        An open connection; the refresh commits with it (one transaction: readers see the old
        figures until it commits).
    settings:
        Where the carbon fraction and E come from; default the process settings.
    force:
        Recompute even when nothing changed.

    Returns
    -------
    float or None
        Seconds the recomputation took, or None when the figures were already current.

    """
    write_parameters(conn, settings)
    if not force and is_fresh(conn):
        conn.commit()
        return None
    started = time.perf_counter()
    for view in _VIEWS:
        conn.execute(
            sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier("smarttrees", view))
        )
    conn.commit()
    return time.perf_counter() - started


def refresh_after_load(url: str | None = None, settings: Settings | None = None) -> str | None:
    """Recompute the carbon figures once a load has committed, if it changed their inputs.

    The OGC items and the IOC tree layer serve the stored figures, so a load that left them
    stale would publish empty carbon for its trees until someone refreshed.

    Parameters
    ----------
    url:
        The database the load wrote to; default the configured one.
    settings:
        Where ``carbon_after_load``, the carbon fraction and E come from.

    Returns
    -------
    str or None
        A line for the load's report, or None when ``SMARTTREES_CARBON_AFTER_LOAD`` is off.

    """
    from smarttrees.database import connect

    settings = settings or get_settings()
    if not settings.carbon_after_load:
        return None
    with connect(url) as conn:
        seconds = refresh(conn, settings)
    if seconds is None:
        return "carbon: already current"
    return f"carbon: recomputed in {seconds:.1f} s"
