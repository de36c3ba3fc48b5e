"""Carbon of the trees: keeps the stored figures of migrations 0010/0029 up to date.

The equations live in SQL (``smarttrees.tree_carbon_computed``, see the migrations and the
README's "Carbon"); this module writes the settings they take (carbon fraction, Chave's E) and
stores their results in ``tree_carbon`` and ``tree_carbon_by_commune`` when the trees, the
settings, the species' wood densities or the species-specific equations differ from what they
were computed from (``tree_carbon_version``).

What is recomputed:

- the trees changed since the stored version (their ``tree_history`` rows: inserted, updated,
  deleted), and the sums of the communes they were and are in, when only trees changed; the
  species' height–diameter models stay as fitted;
- every tree, when the settings, wood densities or equations changed, or when more than half
  the trees changed (one pass is then quicker than by id);
- the models refitted and every tree, when asked (``refit``), on the first computation, or
  when a species touched by the change has a count of measured trees (diameter and height, not
  removed) that moved by more than ``SMARTTREES_CARBON_REFIT_SHARE`` of the count it was fitted
  on (``carbon_fit_counts``), among species with at least 20 such trees then or now.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from smarttrees.settings import Settings, get_settings

log = logging.getLogger(__name__)

CO2_PER_C = 44.0 / 12.0  # molar masses: CO₂ / C

# More trees changed than this share of the inventory: recompute them all in one pass.
WHOLE_SHARE = 0.5
# The fewest measured trees of a species that can have a height model (migration 0010).
MODEL_MIN_TREES = 20
# Refreshes wait for each other: two of them would delete and insert the same trees.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('smarttrees.carbon'))"
# And for the transactions writing trees: the stored version is the highest history id seen,
# and a history id is drawn when its row is written, not when it commits. A write holding a
# lower id and committing after the refresh read the version would never be recomputed (until
# a refit). SHARE waits for the writers in flight and holds new ones until the refresh commits
# (0.5 s for 11,300 changed trees; a refit of the province about 6 s).
_WRITERS_DONE = "LOCK TABLE smarttrees.trees, smarttrees.tree_history IN SHARE MODE"
_INPUTS = ("SELECT tree_version, carbon_fraction, chave_e, equations, wood_densities "
           "FROM smarttrees.carbon_inputs")
_STORED = ("SELECT tree_version, carbon_fraction, chave_e, equations, wood_densities "
           "FROM smarttrees.tree_carbon_version")

# Species of the changed trees (as stored before, and now) whose measured-tree count moved
# from the count their model was fitted on by more than the share.
# Only species whose count can have moved: of trees inserted or deleted, or whose update
# changed the species, a diameter or height from or to none, or the condition from or to
# removed (the history's "changes", {field: {old, new}}). Not a height measured again.
_TOUCHED_BY_CHANGE = """
    SELECT species_id FROM smarttrees.trees WHERE id IN (SELECT tree_id FROM carbon_moved)
    UNION
    SELECT species_id FROM smarttrees.tree_carbon
    WHERE tree_id IN (SELECT tree_id FROM carbon_moved)
"""
_MOVED = """
CREATE TEMP TABLE carbon_moved ON COMMIT DROP AS
SELECT DISTINCT tree_id FROM smarttrees.tree_history
WHERE id > %(since)s AND id <= %(until)s
  AND (change <> 'update' OR changes ? 'species_id'
       OR changes -> 'dbh_cm' ->> 'old' IS NULL AND changes ? 'dbh_cm'
       OR changes -> 'dbh_cm' ->> 'new' IS NULL AND changes ? 'dbh_cm'
       OR changes -> 'height_m' ->> 'old' IS NULL AND changes ? 'height_m'
       OR changes -> 'height_m' ->> 'new' IS NULL AND changes ? 'height_m'
       OR 'removed' IN (changes -> 'condition' ->> 'old', changes -> 'condition' ->> 'new'))
"""
_EVERY_SPECIES = """
    SELECT id FROM smarttrees.species UNION SELECT species_id FROM smarttrees.carbon_fit_counts
"""
_DRIFTED = f"""
WITH touched (species_id) AS ({{touched}}), measured AS (
    SELECT species_id, count(*) AS n FROM smarttrees.trees
    WHERE species_id IN (SELECT species_id FROM touched)
      AND dbh_cm IS NOT NULL AND height_m IS NOT NULL AND condition IS DISTINCT FROM 'removed'
    GROUP BY species_id
)
SELECT s.species_id, coalesce(f.measured, 0), coalesce(m.n, 0)
FROM touched s
LEFT JOIN measured m USING (species_id)
LEFT JOIN smarttrees.carbon_fit_counts f USING (species_id)
WHERE s.species_id IS NOT NULL
  AND greatest(coalesce(f.measured, 0), coalesce(m.n, 0)) >= {MODEL_MIN_TREES}
  AND abs(coalesce(m.n, 0) - coalesce(f.measured, 0)) > %s * coalesce(f.measured, 0)
ORDER BY 1
"""
_FIT_COUNTS = """
INSERT INTO smarttrees.carbon_fit_counts
SELECT species_id, count(*) FROM smarttrees.trees
WHERE species_id IS NOT NULL AND dbh_cm IS NOT NULL AND height_m IS NOT NULL
  AND condition IS DISTINCT FROM 'removed'
GROUP BY species_id
"""
# The communes' sums, for the communes of carbon_communes (NULL commune: '').
_SUMS = """
INSERT INTO smarttrees.tree_carbon_by_commune
SELECT coalesce(commune_code, ''), count(*), count(equation), sum(agb_kg) / 1000,
       sum(carbon_kg) / 1000, sum(co2e_kg) / 1000
FROM smarttrees.tree_carbon WHERE {where} GROUP BY 1
"""


@dataclass
class Outcome:
    """What a refresh did: how many trees it recomputed, and whether it refitted the models."""

    seconds: float
    trees: int
    refitted: bool
    whole: bool       # every tree recomputed (else only the changed ones)

    def line(self) -> str:
        """A line for a report, e.g. ``recomputed for 12 trees in 0.1 s``."""
        if self.refitted:
            return f"height models refitted, every tree recomputed in {self.seconds:.1f} s"
        if self.whole:
            return f"recomputed in {self.seconds:.1f} s (every tree)"
        return f"recomputed in {self.seconds:.1f} s ({self.trees:,} trees changed)"


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
    stored = conn.execute(_STORED).fetchone()
    return stored is not None and stored == conn.execute(_INPUTS).fetchone()


def refresh(
    conn: psycopg.Connection, settings: Settings | None = None, *, force: bool = False
) -> float | None:
    """Bring the carbon figures up to date; ``force``: refit the models and recompute all.

    Parameters
    ----------
    conn:
        An open connection; the refresh commits with it (one transaction: readers see the old
        figures until it commits).
    settings:
        Where the carbon fraction, E and the refit share come from; default the process
        settings.
    force:
        Refit the height–diameter models and recompute every tree, even when nothing changed.

    Returns
    -------
    float or None
        Seconds the recomputation took, or None when the figures were already current.

    """
    outcome = update(conn, settings, refit=force)
    conn.commit()
    return None if outcome is None else outcome.seconds


def update(conn: psycopg.Connection, settings: Settings | None = None, *,
           refit: bool = False) -> Outcome | None:
    """Recompute what changed (see the module's docstring), without committing.

    Returns None when the figures were current and ``refit`` was not asked.
    """
    settings = settings or get_settings()
    write_parameters(conn, settings)
    conn.execute(_LOCK)
    conn.execute(_WRITERS_DONE)
    with _index_friendly(conn):
        return _update(conn, settings, refit)


@contextlib.contextmanager
def _index_friendly(conn: psycopg.Connection) -> Iterator[None]:
    """``random_page_cost`` 1.1 for the statements inside, then the former value.

    With the default 4, the planner looked up the few thousand changed trees by hashing all
    1.13 M trees and their carbon rows (seq scans, 2 s of the 5 s of an 11,300-tree change at
    load 17), not through the id indexes (as the merge: etl.merge._MERGE_PLANNER).
    """
    row = conn.execute("SELECT current_setting('random_page_cost')").fetchone()
    conn.execute("SELECT set_config('random_page_cost', '1.1', true)")
    yield
    if row is not None:   # not on an error: the transaction is then rolled back with it
        conn.execute("SELECT set_config('random_page_cost', %s, true)", [row[0]])


def _update(conn: psycopg.Connection, settings: Settings, refit: bool) -> Outcome | None:
    stored = conn.execute(_STORED).fetchone()
    current = conn.execute(_INPUTS).fetchone()
    assert current is not None
    if not refit and stored == current:
        return None
    started = time.perf_counter()
    trees = 0
    whole = True
    if stored is None:
        refit = True
    elif not refit:
        # Only trees changed: those; else (settings, wood densities, equations) every tree.
        only_trees = stored[1:] == current[1:]
        if only_trees:
            trees = _changed(conn, stored[0], current[0])
        touched = _TOUCHED_BY_CHANGE if only_trees else _EVERY_SPECIES
        drifted = conn.execute(_DRIFTED.format(touched=touched),
                               [settings.carbon_refit_share]).fetchall()
        if drifted:
            log.info("height models refitted: measured trees of species %s went from %s",
                     ", ".join(str(s) for s, _, _ in drifted),
                     ", ".join(f"{a} to {b}" for _, a, b in drifted))
            refit = True
        elif only_trees:
            # TRUNCATE leaves no history: after it every tree is new (more than half of them
            # changed), or there is none.
            count = _trees(conn)
            whole = trees > WHOLE_SHARE * count or count == 0
    if refit:
        _refit(conn)
    if whole:
        _recompute_all(conn)
    else:
        _recompute_changed(conn)
    conn.execute("DELETE FROM smarttrees.tree_carbon_version")
    conn.execute("INSERT INTO smarttrees.tree_carbon_version VALUES (%s, %s, %s, %s, %s)", current)
    return Outcome(time.perf_counter() - started, trees, refit, whole)


def _changed(conn: psycopg.Connection, since: int, until: int) -> int:
    """Fill carbon_changed with the trees whose history has rows in (since, until].

    And carbon_moved with those of them whose species' count of measured trees can have moved.
    """
    conn.execute("DROP TABLE IF EXISTS carbon_changed, carbon_moved")
    conn.execute("CREATE TEMP TABLE carbon_changed ON COMMIT DROP AS "
                 "SELECT DISTINCT tree_id FROM smarttrees.tree_history "
                 "WHERE id > %s AND id <= %s", [since, until])
    conn.execute(_MOVED, {"since": since, "until": until})
    conn.execute("ANALYZE carbon_changed")
    return _count(conn, "carbon_changed")


def _trees(conn: psycopg.Connection) -> int:
    """The number of trees, as the row-count triggers keep it (migration 0008)."""
    row = conn.execute("SELECT n FROM smarttrees.row_counts WHERE table_name = 'trees'").fetchone()
    return int(row[0]) if row else _count(conn, "smarttrees.trees")


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - our names
    return int(row[0]) if row else 0


def _refit(conn: psycopg.Connection) -> None:
    """Fit every species' height–diameter model on today's trees, and keep the counts."""
    conn.execute("TRUNCATE smarttrees.species_height_models, smarttrees.carbon_fit_counts")
    conn.execute("INSERT INTO smarttrees.species_height_models "
                 "SELECT * FROM smarttrees.species_height_fits")
    conn.execute(_FIT_COUNTS)


def _recompute_all(conn: psycopg.Connection) -> None:
    """Every tree's carbon and every commune's sums."""
    conn.execute("TRUNCATE smarttrees.tree_carbon, smarttrees.tree_carbon_by_commune")
    conn.execute("INSERT INTO smarttrees.tree_carbon SELECT * FROM smarttrees.tree_carbon_computed")
    conn.execute(_SUMS.format(where="true"))
    conn.execute("ANALYZE smarttrees.tree_carbon")


def _recompute_changed(conn: psycopg.Connection) -> None:
    """The carbon of the trees in carbon_changed; the sums of their communes moved by as much.

    The communes' sums are adjusted by the rows taken out and put in, not added up again:
    the changed trees of a survey lie in most communes, and adding those up again read every
    tree (1.6 s of 3.3 s at load 12). Counts are exact; sums differ from a new addition by
    rounding only (of the order of 1e-15), and are added up anew whenever every tree is.
    """
    conn.execute("DROP TABLE IF EXISTS carbon_delta")
    conn.execute("CREATE TEMP TABLE carbon_delta (commune_code text, trees bigint, "
                 "estimated bigint, agb_kg float8, carbon_kg float8, co2e_kg float8) "
                 "ON COMMIT DROP")
    conn.execute(_DELTA.format(
        rows="DELETE FROM smarttrees.tree_carbon "
             "WHERE tree_id IN (SELECT tree_id FROM carbon_changed) RETURNING *", sign="-"))
    conn.execute(_DELTA.format(
        rows="INSERT INTO smarttrees.tree_carbon SELECT * FROM smarttrees.tree_carbon_computed "
             "WHERE tree_id IN (SELECT tree_id FROM carbon_changed) RETURNING *", sign=""))
    conn.execute(_MOVE_SUMS)
    conn.execute("DELETE FROM smarttrees.tree_carbon_by_commune WHERE trees = 0")
    # As the full addition gives: no sum where no tree has an estimate.
    conn.execute("UPDATE smarttrees.tree_carbon_by_commune "
                 "SET agb_t = NULL, carbon_t = NULL, co2e_t = NULL "
                 "WHERE estimated = 0 AND agb_t IS NOT NULL")


# The rows a statement took out (sign "-") or put in (""), added up per commune.
_DELTA = """
WITH changed AS ({rows})
INSERT INTO carbon_delta
SELECT coalesce(commune_code, ''), {sign}count(*), {sign}count(equation),
       {sign}coalesce(sum(agb_kg), 0), {sign}coalesce(sum(carbon_kg), 0),
       {sign}coalesce(sum(co2e_kg), 0)
FROM changed GROUP BY 1
"""
_MOVE_SUMS = """
INSERT INTO smarttrees.tree_carbon_by_commune AS b
SELECT commune_code, sum(trees), sum(estimated), sum(agb_kg) / 1000, sum(carbon_kg) / 1000,
       sum(co2e_kg) / 1000
FROM carbon_delta GROUP BY commune_code
ON CONFLICT (commune_code) DO UPDATE
SET trees = b.trees + EXCLUDED.trees, estimated = b.estimated + EXCLUDED.estimated,
    agb_t = coalesce(b.agb_t, 0) + EXCLUDED.agb_t,
    carbon_t = coalesce(b.carbon_t, 0) + EXCLUDED.carbon_t,
    co2e_t = coalesce(b.co2e_t, 0) + EXCLUDED.co2e_t
"""


def refresh_after_load(url: str | None = None, settings: Settings | None = None) -> str | None:
    """Bring the carbon figures up to date once a load has committed, if it changed their inputs.

    The OGC items and the IOC tree layer serve the stored figures, so a load that left them
    stale would publish empty carbon for its trees until someone refreshed. Only the trees the
    load changed are recomputed (see the module's docstring).

    Parameters
    ----------
    url:
        The database the load wrote to; default the configured one.
    settings:
        Where ``carbon_after_load``, the carbon fraction, E and the refit share come from.

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
        outcome = update(conn, settings)
        conn.commit()
    if outcome is None:
        return "carbon: already current"
    return f"carbon: {outcome.line()}"
