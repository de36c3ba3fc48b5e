"""The synthetic province: generate every table family from one seed and load it at once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from etl.binary_copy import copy_binary
from etl.ioc_reference import load_provinces
from etl.synthetic import custody, forestry, geography, ioc, trees
from etl.synthetic.geography import PROVINCE_CODE, VALID_FROM, Communes
from etl.synthetic.load import (
    Progress,
    bulk_load,
    copy_columns,
    ids_by_code,
    point_ewkb_hex,
    polygons_ewkb_hex,
    refresh_materialised_views,
    step,
)
from etl.synthetic.species_mix import PLANTATION, SCATTERED, URBAN, resolve
from smarttrees import carbon
from smarttrees.database import connect
from smarttrees.domain import fold
from smarttrees.errors import SmartTreesError
from smarttrees.ioc import record_parameters
from smarttrees.settings import Settings, get_settings

DATASET = "province"
SOURCE = "generator"


@dataclass(frozen=True)
class Scale:
    """How big a province to make."""

    communes: int
    urban_communes: int
    villages_per_commune: int
    urban_trees: int
    scattered_trees: int
    plantation_trees: int
    stands: int
    nurseries: int
    seedling_lots: int
    timber_logs: int
    departments: int
    documents: int
    support_cases: int
    support_total_vnd: int

    @property
    def trees(self) -> int:
        """All tree points."""
        return self.urban_trees + self.scattered_trees + self.plantation_trees


SCALES = {
    "small": Scale(
        communes=12,
        urban_communes=3,
        villages_per_commune=3,
        urban_trees=2_000,
        scattered_trees=1_500,
        plantation_trees=1_500,
        stands=30,
        nurseries=5,
        seedling_lots=20,
        timber_logs=200,
        departments=3,
        documents=10_000,
        support_cases=300,
        support_total_vnd=600_000_000,
    ),
    "full": Scale(
        communes=92,
        urban_communes=15,
        villages_per_commune=8,
        urban_trees=160_000,
        scattered_trees=320_000,
        plantation_trees=650_000,
        stands=4_000,
        nurseries=40,
        seedling_lots=1_200,
        timber_logs=50_000,
        departments=12,
        documents=1_900_000,
        support_cases=11_669,
        support_total_vnd=23_300_000_000,
    ),
}


class ProvinceAlreadyLoaded(SmartTreesError):
    """The database already holds a generated province."""

    rule = "province_loaded"


@dataclass(frozen=True)
class ProvinceSummary:
    """What a generated province holds (row counts per table) and where its densest town is."""

    scale: str
    seed: int
    communes_source: str
    communes: int
    urban_communes: int
    trees: int
    trees_by_category: dict[str, int]
    stands: int
    harvest_stands: int
    nurseries: int
    seedling_lots: int
    timber_logs: int
    agencies: int
    documents: int
    support_cases: int
    support_total_vnd: int
    densest_town_commune: str
    densest_town_bbox: tuple[float, float, float, float]  # lon/lat min, max
    scan_events: int = 0  # the chain of custody of the lots and logs
    transport_loads: int = 0
    seconds: float = field(default=0.0, compare=False)

    def as_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProvinceSummary:
        """A summary back from :meth:`as_json`."""
        data = dict(data)
        data["densest_town_bbox"] = tuple(data["densest_town_bbox"])
        return cls(**data)


@dataclass(frozen=True)
class Province:
    """Every generated table family, in memory."""

    communes: Communes
    stands: forestry.Stands
    trees: trees.Trees
    tree_codes: np.ndarray
    nurseries: forestry.Nurseries
    lots: forestry.SeedlingLots
    logs: forestry.TimberLogs
    mills: custody.Mills
    custody: custody.CustodyPlan
    agencies: ioc.Agencies
    documents: ioc.Documents
    cases: ioc.SupportCases


def _rng(seed: int, family: int) -> np.random.Generator:
    """One generator per table family: changing one family leaves the others as they were."""
    return np.random.default_rng([seed, family])


def build(
    scale: Scale, seed: int, catalogue: dict[str, int], communes_file: Path | None = None
) -> Province:
    """Generate the whole province in memory (deterministic for a seed)."""
    if communes_file is None:
        communes = geography.synthetic_communes(scale.communes, scale.urban_communes, _rng(seed, 1))
    else:
        communes = geography.read_communes(communes_file)
    village_points = geography.villages(communes, scale.villages_per_commune, _rng(seed, 2))
    road_network = geography.roads(communes, village_points)
    plantation_mix = resolve(PLANTATION, catalogue)
    stands = forestry.stands(communes, scale.stands, plantation_mix, _rng(seed, 3))
    urban_trees = trees.urban(communes, scale.urban_trees, resolve(URBAN, catalogue), _rng(seed, 4))
    scattered = trees.scattered(
        communes,
        scale.scattered_trees,
        village_points,
        road_network,
        resolve(SCATTERED, catalogue),
        _rng(seed, 5),
    )
    plantation = trees.plantation(stands, scale.plantation_trees, plantation_mix, _rng(seed, 6))
    nurseries = forestry.nurseries(communes, village_points, scale.nurseries, _rng(seed, 7))
    agencies = ioc.agencies(communes, scale.departments)
    all_trees, tree_codes = trees.numbered(trees.concat([urban_trees, scattered, plantation]))
    all_trees = ioc.with_planting_year(all_trees, _rng(seed, 12))  # the count's curve (IOC)
    lots = forestry.seedling_lots(
        scale.nurseries, scale.seedling_lots, plantation_mix, _rng(seed, 8)
    )
    logs = forestry.timber_logs(stands, scale.timber_logs, plantation_mix, _rng(seed, 9))
    mills = custody.mills(communes, village_points, len(stands), _rng(seed, 20))
    history = custody.plan(communes, stands, nurseries, lots, logs, mills, _rng(seed, 21))
    return Province(
        communes=communes,
        stands=stands,
        trees=all_trees,
        tree_codes=tree_codes,
        nurseries=nurseries,
        lots=lots,
        logs=logs,
        mills=mills,
        custody=history,
        agencies=agencies,
        documents=ioc.documents(agencies, scale.documents, _rng(seed, 10)),
        cases=ioc.support_cases(
            communes, scale.support_cases, scale.support_total_vnd, _rng(seed, 11)
        ),
    )


def densest_town(t: trees.Trees) -> tuple[str, tuple[float, float, float, float]]:
    """The commune with the most street trees, and the bounding box of those trees."""
    street = t.category == "urban"
    if not street.any():
        return "", (0.0, 0.0, 0.0, 0.0)
    codes, counts = np.unique(t.commune[street], return_counts=True)
    code = str(codes[np.argmax(counts)])
    mine = street & (t.commune == code)
    lon, lat = t.lon[mine], t.lat[mine]
    return code, (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))


def _outward(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The box rounded outwards to 5 decimals (about a metre): it still holds every point."""
    xmin, ymin, xmax, ymax = box
    down, up = (lambda v: math.floor(v * 1e5) / 1e5), (lambda v: math.ceil(v * 1e5) / 1e5)
    return down(xmin), down(ymin), up(xmax), up(ymax)


def summarise(province: Province, scale: str, seed: int, seconds: float) -> ProvinceSummary:
    """Counts of what :func:`build` made."""
    categories, counts = np.unique(province.trees.category, return_counts=True)
    code, box = densest_town(province.trees)
    return ProvinceSummary(
        scale=scale,
        seed=seed,
        communes_source=province.communes.source,
        communes=len(province.communes),
        urban_communes=int(province.communes.urban.sum()),
        trees=len(province.trees),
        trees_by_category={str(c): int(n) for c, n in zip(categories, counts, strict=True)},
        stands=len(province.stands),
        harvest_stands=int(np.isfinite(province.stands.harvest_allowed_m3).sum()),
        nurseries=len(province.nurseries.codes),
        seedling_lots=len(province.lots.codes),
        timber_logs=len(province.logs.codes),
        agencies=len(province.agencies.codes),
        documents=len(province.documents.agency),
        support_cases=len(province.cases.case_no),
        support_total_vnd=int(province.cases.amount_vnd.sum()),
        densest_town_commune=code,
        densest_town_bbox=_outward(box),
        scan_events=len(province.custody),
        transport_loads=len(province.custody.loads),
        seconds=round(seconds, 1),
    )


def species_catalogue(conn: psycopg.Connection) -> dict[str, int]:
    """Scientific name → id of the loaded species catalogue."""
    return dict(conn.execute("SELECT scientific_name, id FROM smarttrees.species").fetchall())


def loaded_province(url: str) -> ProvinceSummary | None:
    """The summary of the province already generated into the database, if any."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT counts FROM smarttrees.datasets WHERE name = %s", [DATASET]
        ).fetchone()
    return ProvinceSummary.from_json(row[0]) if row else None


def generate_province(
    url: str,
    scale: str = "small",
    seed: int = 2025,
    communes: Path | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> ProvinceSummary:
    """Generate a province and load it into the database at ``url``, all or nothing.

    Parameters
    ----------
    url
        PostgreSQL URL of a migrated database with the species catalogue loaded.
    scale
        ``small`` (about 5,000 trees, for tests) or ``full`` (1,130,000 trees).
    seed
        The same seed gives the same province, to the last coordinate.
    communes
        A boundary file (GeoJSON, GeoPackage, shapefile…) to use instead of synthetic
        communes; it needs a code column, and may have name and type (phường/xã) columns.
    progress
        Called as ``progress(step, done, total)`` while loading.
    settings
        The courier cost and privacy threshold the IOC layers apply (the documents' saving is
        written at that cost); ``None`` reads the environment.

    Raises
    ------
    ProvinceAlreadyLoaded
        When the database already holds a generated province.

    """
    if scale not in SCALES:
        raise SmartTreesError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    started = time.perf_counter()
    with connect(url) as conn:
        if conn.execute("SELECT 1 FROM datasets WHERE name = %s", [DATASET]).fetchone():
            raise ProvinceAlreadyLoaded("a province is already loaded in this database")
        with step(progress, "generate"):
            province = build(SCALES[scale], seed, species_catalogue(conn), communes)
        try:
            _load(conn, province, progress, settings or get_settings())
        except psycopg.errors.IntegrityError as exc:
            # E.g. communes with the same codes already in force: nothing is written.
            raise SmartTreesError(
                f"cannot load the province into {exc.diag.table_name or 'the database'}: "
                f"{exc.diag.message_primary} {exc.diag.message_detail or ''}".strip()
            ) from exc
        summary = summarise(province, scale, seed, time.perf_counter() - started)
        conn.execute(
            "INSERT INTO datasets (name, params, counts) VALUES (%s, %s, %s)",
            [
                DATASET,
                Jsonb({"scale": scale, "seed": seed, "communes": province.communes.source}),
                Jsonb(summary.as_json()),
            ],
        )
    return summary


def _load(
    conn: psycopg.Connection, p: Province, progress: Progress | None, settings: Settings
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('smarttrees.source', %s, true), "
            "set_config('smarttrees.actor', 'smarttrees generate', true)",
            [SOURCE],
        )
        _load_admin_units(cur, p.communes)
        agency_ids = _load_agencies(cur, p.agencies)
        stand_ids = _load_stands(cur, p.stands)
        # Scan codes are made of the items' ids, so the ids are drawn before the rows are written.
        ids = custody.Ids(
            lots=_reserve_ids(cur, "smarttrees.seedling_lots", len(p.lots.codes)),
            logs=_reserve_ids(cur, "smarttrees.timber_logs", len(p.logs.codes)),
            loads=_reserve_ids(cur, "smarttrees.transport_loads", len(p.custody.loads)),
        )
        # Checking the custody scans is Python's work, indexing the trees PostgreSQL's: the
        # checks run in a thread from when the trees are sent (not before: both would want the
        # interpreter while the trees are encoded).
        with ThreadPoolExecutor(1, thread_name_prefix="custody") as pool:
            checks: list[Future[custody.Custody]] = []

            def start_checks() -> None:
                checks.append(
                    pool.submit(custody.replay, p.custody, ids, p.lots, p.logs, p.stands, stand_ids)
                )

            _load_trees(cur, p.trees, p.tree_codes, stand_ids, progress, sent=start_checks)
            _load_ioc(cur, p, agency_ids, progress, settings.courier_cost_vnd)
            with step(progress, "custody checks"):
                history = checks[0].result()
        _load_forestry(cur, p, stand_ids, ids, history, progress)
        with step(progress, "analyze"):
            cur.execute("ANALYZE")
        with step(progress, "materialised views"):
            record_parameters(cur, settings)  # the IOC views apply the settings in force
            refresh_materialised_views(cur)
        with step(progress, "carbon"):
            carbon.update(conn, settings, refit=True)  # tables since 0029, not materialised views


def _load_admin_units(cur: psycopg.Cursor[Any], communes: Communes) -> None:
    n = len(communes)
    province = geography.as_multipolygon(communes.province)
    copy_columns(
        cur,
        "smarttrees.admin_units",
        {
            "level": ["province"] + ["commune"] * n,
            "code": [PROVINCE_CODE] + communes.codes,
            "name": [communes.province_name] + communes.names,
            "name_ascii": [fold(communes.province_name)] + [fold(name) for name in communes.names],
            "unit_type": ["tỉnh"] + communes.unit_types,
            "parent_code": [None] + [PROVINCE_CODE] * n,
            "valid_from": [VALID_FROM] * (n + 1),
            "source": [communes.source] * (n + 1),
            "geom": polygons_ewkb_hex(np.array([province, *communes.geoms], dtype=object)),
        },
    )


def _load_agencies(cur: psycopg.Cursor[Any], a: ioc.Agencies) -> np.ndarray:
    copy_columns(
        cur,
        "smarttrees.agencies",
        {
            "code": a.codes,
            "name": a.names,
            "level": a.levels,
            "commune_code": a.commune,
            "geom": point_ewkb_hex(a.lon, a.lat),
        },
    )
    return ids_by_code(cur, "smarttrees.agencies", "code", a.codes)


def _load_stands(cur: psycopg.Cursor[Any], s: forestry.Stands) -> np.ndarray:
    copy_columns(
        cur,
        "smarttrees.stands",
        {
            "stand_code": s.codes,
            "species_id": s.species_id,
            "planting_year": s.planting_year,
            "area_ha": s.area_ha,
            "planted_count": s.planted_count,
            "owner_type": s.owner_type,
            "owner_name": s.owner_name,
            "forest_function": s.forest_function,
            "harvest_allowed_m3": s.harvest_allowed_m3,
            "commune_code": s.commune,
            "source": np.full(len(s), SOURCE),
            "geom": polygons_ewkb_hex(s.geoms),
        },
    )
    return ids_by_code(cur, "smarttrees.stands", "stand_code", s.codes.tolist())


def _load_trees(
    cur: psycopg.Cursor[Any],
    t: trees.Trees,
    codes: np.ndarray,
    stand_ids: np.ndarray,
    progress: Progress | None,
    sent: Callable[[], None] = lambda: None,
) -> None:
    """The trees and their history; ``sent()`` once the rows are sent, before the indexes."""
    with (
        bulk_load(cur, "smarttrees.trees", progress) as fresh,
        bulk_load(cur, "smarttrees.tree_history", progress),
    ):
        stand_id = np.ma.array(stand_ids[np.maximum(t.stand, 0)], mask=t.stand < 0)
        copy_binary(
            cur,
            "smarttrees.trees",
            {
                "tree_code": ("text", codes),
                "category": ("text", t.category),
                "species_id": ("int4", t.species_id),
                "dbh_cm": ("float4", t.dbh_cm),
                "height_m": ("float4", t.height_m),
                "crown_m": ("float4", t.crown_m),
                "condition": ("text", t.condition),
                "planted_on": ("date", t.planted_on),
                "commune_code": ("text", t.commune),
                "stand_id": ("int8", stand_id),
                "source": ("text", np.full(len(t), SOURCE)),
                "geom": ("geometry", np.column_stack([t.lon, t.lat])),
            },
            progress,
            freeze=fresh,
        )
        sent()


def _load_forestry(
    cur: psycopg.Cursor[Any],
    p: Province,
    stand_ids: np.ndarray,
    ids: custody.Ids,
    history: custody.Custody,
    progress: Progress | None,
) -> None:
    with step(progress, "forestry"):
        nursery_ids = _load_nurseries(cur, p.nurseries)
        _load_lots_and_logs(cur, p, nursery_ids, stand_ids, ids, history)
    _load_custody(cur, ids, history, progress)


def _load_nurseries(cur: psycopg.Cursor[Any], n: forestry.Nurseries) -> np.ndarray:
    copy_columns(
        cur,
        "smarttrees.nurseries",
        {
            "nursery_code": n.codes,
            "name": n.names,
            "operator": n.operators,
            "certificate_no": n.certificates,
            "capacity": n.capacity,
            "commune_code": n.commune,
            "source": np.full(len(n.codes), SOURCE),
            "geom": point_ewkb_hex(n.lon, n.lat),
        },
    )
    return ids_by_code(cur, "smarttrees.nurseries", "nursery_code", n.codes.tolist())


def _load_lots_and_logs(
    cur: psycopg.Cursor[Any],
    p: Province,
    nursery_ids: np.ndarray,
    stand_ids: np.ndarray,
    ids: custody.Ids,
    history: custody.Custody,
) -> None:
    """Transport loads, seedling lots and timber logs, in the state their custody left them."""
    loads = p.custody.loads
    copy_columns(
        cur,
        "smarttrees.transport_loads",
        {
            "id": ids.loads,
            "load_code": ["FPL " + f for f in loads.fpl_number],  # as the scan API names them
            "fpl_number": loads.fpl_number,
            "vehicle_plate": loads.vehicle_plate,
            "destination": loads.destination,
        },
    )
    lots = p.lots
    copy_columns(
        cur,
        "smarttrees.seedling_lots",
        {
            "id": ids.lots,
            "lot_code": lots.codes,
            "nursery_id": nursery_ids[lots.nursery],
            "species_id": lots.species_id,
            "seed_source": lots.seed_source,
            "quantity": lots.quantity,
            "quantity_dispatched": [s.dispatched for s in history.lots],
            "quantity_planted": [s.planted for s in history.lots],
            "certificate_no": custody.certificates(p.custody, len(lots.codes)),
            "sown_on": lots.sown_on,
            "ready_on": lots.ready_on,
            "status": [s.status for s in history.lots],
            "source": np.full(len(lots.codes), SOURCE),
        },
    )
    logs = p.logs
    lon, lat = custody.last_seen(p.custody, logs)
    load = p.custody.log_load
    copy_columns(
        cur,
        "smarttrees.timber_logs",
        {
            "id": ids.logs,
            "log_code": logs.codes,
            "stand_id": stand_ids[logs.stand],
            "species_id": logs.species_id,
            "felled_on": logs.felled_on,
            "length_m": logs.length_m,
            "diameter_cm": logs.diameter_cm,
            "volume_m3": logs.volume_m3,
            "status": [s.status for s in history.logs],
            "load_id": [int(ids.loads[i]) if i >= 0 else None for i in load.tolist()],
            "source": np.full(len(logs.codes), SOURCE),
            "geom": point_ewkb_hex(lon, lat),
        },
    )


def _load_custody(
    cur: psycopg.Cursor[Any], ids: custody.Ids, history: custody.Custody, progress: Progress | None
) -> None:
    """The tags of every lot, log and load, and every scan of them."""
    # Every lot, log and load carries a tag, its code made of its id (barcodes.tags.issue_tags).
    copy_columns(
        cur,
        "smarttrees.tags",
        {
            "code": [c for codes in history.codes for c in codes],
            "item_type": [
                t.value for t, i in zip(custody.ITEM_TYPES, ids.all(), strict=True) for _ in i
            ],
            "item_id": np.concatenate(ids.all()),
        },
    )
    with bulk_load(cur, "smarttrees.scan_events", progress):
        statement = sql.SQL("COPY smarttrees.scan_events ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, custody.COLUMNS))
        )
        with step(progress, "scan_events"), cur.copy(statement) as copy:
            for chunk in history.rows:
                copy.write(chunk)


def _reserve_ids(cur: psycopg.Cursor[Any], table: str, n: int) -> np.ndarray:
    """``n`` ids drawn from the identity of ``table``, in increasing order."""
    rows = cur.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s) ORDER BY 1",
        [table, n],
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def _load_ioc(
    cur: psycopg.Cursor[Any],
    p: Province,
    agency_ids: np.ndarray,
    progress: Progress | None,
    courier_cost_vnd: int,
) -> None:
    load_provinces(cur.connection)  # where people were stranded: the cases name them
    d = p.documents
    with bulk_load(cur, "smarttrees.documents", progress) as fresh:
        copy_binary(
            cur,
            "smarttrees.documents",
            {
                "agency_id": ("int4", agency_ids[d.agency]),
                "receiver_id": ("int4", agency_ids[d.receiver]),
                "doc_no": ("text", d.doc_no),
                "doc_type": ("text", d.doc_type),
                "direction": ("text", d.direction),
                "electronic": ("bool", d.electronic),
                "sent_on": ("date", d.sent_on),
                "commune_code": ("text", d.commune),
                "courier_saving_vnd": ("int4", np.where(d.electronic, courier_cost_vnd, 0)),
            },
            progress,
            freeze=fresh,
        )
    c = p.cases
    copy_columns(
        cur,
        "restricted.citizen_support_cases",
        {
            "case_no": c.case_no,
            "full_name": c.full_name,
            "national_id": c.national_id,
            "birth_year": c.birth_year,
            "commune_code": c.commune,
            "support_type": c.support_type,
            "amount_vnd": c.amount_vnd,
            "paid_on": c.paid_on,
            "phone": c.phone,
            "bank_account": c.bank_account,
            "stranded_province": c.stranded_province,
            "status": c.status,
            "channel": c.channel,
            "source": np.full(len(c.case_no), SOURCE),
        },
    )
