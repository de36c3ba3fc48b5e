"""The chain of custody of the synthetic province: every scan of its seedling lots and timber.

A lot is certified and declared ready at its nursery, dispatched in one to four parts to stands
and communes nearby, and planted where it went (never more than arrived). A stand with a harvest
allowance is cut in one campaign: each log is scanned where it is felled, again at the stand's
landing (the allowance covers every log, see :func:`etl.synthetic.forestry.timber_logs`), loaded
on a truck with its forest-product list (bảng kê lâm sản), received at a sawmill or timber yard,
and later processed or sold. Forest rangers inspect a few lots, logs and trucks on the way.
Everything happens before :data:`AS_OF`, the end of the survey, so the most recent stands are
still being cut and the last trucks are on the road.

:func:`plan` draws the histories (numpy, no database); :func:`scan_events` turns them into
:class:`barcodes.events.ScanEvent` objects once the items have ids, and :func:`replay` checks them
with the scan API's own checks and custody rules (:func:`barcodes.store.replay_in_memory`), which
gives the state every lot and log is in at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import shapely
from pydantic import TypeAdapter

from barcodes.codes import ItemType, make_code
from barcodes.custody import ItemState, StandState
from barcodes.events import ScanEvent
from barcodes.store import event_details, replay_in_memory
from etl.synthetic.arrays import rank_within
from etl.synthetic.forestry import Nurseries, SeedlingLots, Stands, TimberLogs, local_to_lonlat
from etl.synthetic.geography import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR, Communes, random_points_in
from etl.synthetic.load import point_ewkb_hex
from smarttrees.errors import SmartTreesError

# The end of the survey, 17:00 in Thái Nguyên (UTC+7) on 30 September 2025: no scan after it.
AS_OF = np.datetime64("2025-09-30T10:00:00", "s")
HOUR = 3_600
DAY = 86_400
WORKING_DAY = 10 * HOUR  # scans fall between 07:00 and 17:00 local time (00:00–10:00 UTC)
ACTOR = "smarttrees generate"

# What an item is, in the plan's ``kind`` column.
LOT, LOG, LOAD = 0, 1, 2
ITEM_TYPES = (ItemType.SEEDLING_LOT, ItemType.TIMBER_LOG, ItemType.TRANSPORT_LOAD)
# Event-specific fields each event type carries (the custody rules say which it may).
FIELDS = {
    "certified": ("certificate_no",),
    "dispatched": ("quantity", "to_commune", "to_stand"),
    "planted": ("quantity",),
    "felled": ("volume_m3",),
    "loaded": ("fpl_number", "vehicle_plate"),
    "received": ("destination_kind", "destination"),
}
OPTIONAL = sorted({name for names in FIELDS.values() for name in names})
# Ties in time are broken by the order of the custody chain.
STAGE = {
    e: i
    for i, e in enumerate(
        [
            *("certified", "ready", "dispatched", "planted"),
            *("felled", "at_landing", "loaded", "received", "processed", "sold", "inspected"),
        ]
    )
}


@dataclass(frozen=True)
class Mills:
    """Sawmills and timber yards: where the province's logs are received."""

    codes: list[str]
    names: list[str]
    kind: np.ndarray  # "mill" or "yard"
    lon: np.ndarray
    lat: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)


def mills(
    communes: Communes, village_points: list[np.ndarray], n_stands: int, rng: np.random.Generator
) -> Mills:
    """A sawmill for about every 300 stands (two at least) and half as many timber yards.

    Mills stand beside villages of rural communes, yards beside those of towns, where timber is
    sold on.
    """
    n_mills = max(2, n_stands // 300)
    n_yards = max(1, n_mills // 2)
    rural = np.flatnonzero(~communes.urban)
    towns = np.flatnonzero(communes.urban)
    rural = rural if len(rural) else np.arange(len(communes))
    towns = towns if len(towns) else np.arange(len(communes))
    where = np.r_[
        rng.choice(rural, n_mills, replace=len(rural) < n_mills),
        rng.choice(towns, n_yards, replace=len(towns) < n_yards),
    ]
    kind = np.array(["mill"] * n_mills + ["yard"] * n_yards)
    points = []
    for c in where:
        village = village_points[c][rng.integers(len(village_points[c]))]
        near = shapely.intersection(communes.geoms[c], shapely.Point(village).buffer(0.003))
        points.append(random_points_in(near, 1, rng)[0])
    xy = np.array(points)
    numbers = rank_within(kind) + 1
    names = np.array(
        [
            f"{'Nhà máy chế biến gỗ' if k == 'mill' else 'Bãi tập kết gỗ'} {communes.names[c]}"
            for k, c in zip(kind, where, strict=True)
        ]
    )
    twice = rank_within(names)  # a second mill in one commune gets a number
    return Mills(
        codes=[f"{k.upper()}-{n:02d}" for k, n in zip(kind, numbers, strict=True)],
        names=[f"{n} {t + 1}" if t else str(n) for n, t in zip(names, twice, strict=True)],
        kind=kind,
        lon=xy[:, 0],
        lat=xy[:, 1],
    )


@dataclass(frozen=True)
class Loads:
    """The trucks that left a landing, each with its forest-product list."""

    fpl_number: list[str]
    vehicle_plate: list[str]
    destination: list[str]  # the mill or yard's name
    stand: np.ndarray  # index into Stands

    def __len__(self) -> int:
        return len(self.fpl_number)


@dataclass(frozen=True)
class CustodyPlan:
    """Every planned scan, one row each, in the order they happened (ties: custody order)."""

    kind: np.ndarray  # LOT, LOG or LOAD
    item: np.ndarray  # index into the lots, logs or loads
    event_type: np.ndarray
    at: np.ndarray  # datetime64[s], UTC
    lon: np.ndarray
    lat: np.ndarray
    device: np.ndarray
    fields: dict[str, np.ndarray]  # OPTIONAL fields: object arrays, None where unused
    loads: Loads
    log_load: np.ndarray  # index into loads per log, -1: never loaded

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class _Scans:
    """Scans collected block by block (one block: one event type for many items)."""

    blocks: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        kind: int,
        item: np.ndarray,
        event_type: str,
        at: np.ndarray,
        lon: np.ndarray,
        lat: np.ndarray,
        device: np.ndarray | list[str],
        **fields: Any,
    ) -> None:
        n = len(item)
        if n == 0 and self.blocks:
            return
        block: dict[str, Any] = {
            "kind": np.full(n, kind, dtype=np.int8),
            "item": np.asarray(item, dtype=np.int64),
            "event_type": np.full(n, event_type, dtype=object),
            "at": np.asarray(at, dtype="datetime64[s]"),
            "lon": np.broadcast_to(np.asarray(lon, dtype=float), (n,)),
            "lat": np.broadcast_to(np.asarray(lat, dtype=float), (n,)),
            "device": np.broadcast_to(np.asarray(device, dtype=object), (n,)),
        }
        for name in OPTIONAL:
            value = fields.get(name)
            column = np.full(n, None, dtype=object)
            if value is not None:
                column[:] = value
            block[name] = column
        self.blocks.append(block)

    def finish(self, loads: Loads, log_load: np.ndarray) -> CustodyPlan:
        if not self.blocks:  # a province without lots or logs
            nothing = np.zeros(0, dtype=np.int64)
            self.add(LOT, nothing, "inspected", nothing, nothing, nothing, nothing)
        columns = {name: np.concatenate([b[name] for b in self.blocks]) for name in self.blocks[0]}
        stage = np.array([STAGE[e] for e in columns["event_type"]])
        order = np.lexsort((columns["item"], columns["kind"], stage, columns["at"]))
        columns = {name: values[order] for name, values in columns.items()}
        return CustodyPlan(
            kind=columns["kind"],
            item=columns["item"],
            event_type=columns["event_type"],
            at=columns["at"],
            lon=columns["lon"],
            lat=columns["lat"],
            device=columns["device"],
            fields={name: columns[name] for name in OPTIONAL},
            loads=loads,
            log_load=log_load,
        )


def plan(
    communes: Communes,
    stands: Stands,
    nurseries: Nurseries,
    lots: SeedlingLots,
    logs: TimberLogs,
    mills_: Mills,
    rng: np.random.Generator,
) -> CustodyPlan:
    """Draw the custody history of every lot and log (deterministic for ``rng``'s seed)."""
    province = communes.province
    shapely.prepare(province)
    scans = _Scans()
    _lot_histories(scans, communes, stands, nurseries, lots, rng)
    loads, log_load = _log_histories(scans, communes, province, stands, logs, mills_, rng)
    result = scans.finish(loads, log_load)
    # The scan API refuses a scan outside the province; every place above lies inside it.
    outside = ~shapely.intersects_xy(province, result.lon, result.lat)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise SmartTreesError(
            f"{outside.sum()} planned scans lie outside the province, e.g. a "
            f"{result.event_type[first]} at [{result.lon[first]}, {result.lat[first]}]"
        )
    return result


def _at_work(days: np.ndarray | np.datetime64, rng: np.random.Generator) -> np.ndarray:
    """A moment of the working day on each of ``days``, as datetime64[s] UTC."""
    days = np.asarray(days, dtype="datetime64[D]")
    offset = rng.integers(0, WORKING_DAY, days.shape).astype("timedelta64[s]")
    return days.astype("datetime64[s]") + offset


def _in_hours(at: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``at``, or the next working morning when it falls after work (times only move later)."""
    at = np.asarray(at, dtype="datetime64[s]")
    day = at.astype("datetime64[D]")
    late = (at - day.astype("datetime64[s]")).astype(np.int64) >= WORKING_DAY
    morning = (day + np.timedelta64(1, "D")).astype("datetime64[s]") + _seconds(
        rng.integers(0, 3 * HOUR, at.shape)
    )
    return np.where(late, morning, at)


def _between(low: Any, high: Any, rng: np.random.Generator, share: tuple[float, float]) -> Any:
    """A moment between ``low`` and ``high`` (a working hour when there is one), strictly."""
    span = (high - low).astype(np.int64)
    at = _in_hours(low + _seconds(span * rng.uniform(*share, span.shape)), rng)
    return np.clip(at, low + np.timedelta64(1, "s"), high - np.timedelta64(1, "s"))


def _seconds(values: Any) -> np.ndarray:
    return np.asarray(values).astype(np.int64).astype("timedelta64[s]")


def _nearest(points: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` targets nearest each point (planar degrees: fine at this scale)."""
    distance = np.hypot(*(points[:, None, :] - targets[None, :, :]).transpose(2, 0, 1))
    k = min(k, len(targets))
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


def _lot_histories(
    scans: _Scans,
    communes: Communes,
    stands: Stands,
    nurseries: Nurseries,
    lots: SeedlingLots,
    rng: np.random.Generator,
) -> None:
    """Certification, readiness, partial dispatches and planting of each lot, at its nursery."""
    nursery_xy = np.column_stack([nurseries.lon, nurseries.lat])
    commune_index = {code: i for i, code in enumerate(communes.codes)}
    near_stands = _nearest(nursery_xy, stands.centre, 8) if len(stands) else None
    near_communes = _nearest(nursery_xy, communes.centres, 4)
    rows: dict[str, list[Any]] = {}

    def scan(event_type: str, lot: int, at: Any, xy: Any, device: str, **f: Any) -> None:
        rows.setdefault(event_type, []).append((lot, at, xy[0], xy[1], device, f))

    for lot in range(len(lots.codes)):
        k = int(lots.nursery[lot])
        home = nursery_xy[k]
        nursery_device = f"{nurseries.codes[k]}-phone"
        sown = lots.sown_on[lot]
        if rng.uniform() < 0.08:  # a ranger checks the lot's paperwork some day
            moment = _between(sown.astype("datetime64[s]"), AS_OF, rng, (0.0, 1.0))
            scan("inspected", lot, moment, home, f"forest-protection-{rng.integers(1, 4)}")
        certified = _at_work(sown + np.timedelta64(int(rng.integers(14, 46)), "D"), rng)
        if rng.uniform() < 0.04 or certified > AS_OF:
            continue
        year = certified.astype("datetime64[Y]").astype(int) + 1970
        scan(
            "certified",
            lot,
            certified,
            home,
            f"forest-protection-{rng.integers(1, 4)}",
            certificate_no=f"{lot + 1}/{year}/CN-GCT",
        )
        ready = _at_work(lots.ready_on[lot], rng)
        if ready > AS_OF:
            continue
        scan("ready", lot, ready, home, nursery_device)
        if rng.uniform() < 0.2:  # no buyer yet
            continue
        quantity = int(lots.quantity[lot])
        parts = int(rng.integers(1, 5))
        total = quantity if rng.uniform() < 0.35 else int(quantity * rng.uniform(0.4, 0.95))
        shares = np.maximum(np.floor(rng.dirichlet(np.full(parts, 2.0)) * total), 1).astype(int)
        shares[np.argmax(shares)] -= max(0, int(shares.sum()) - total)
        moment = ready + np.timedelta64(int(rng.integers(1, 46)), "D")
        for share in shares.tolist():
            if moment > AS_OF:
                break
            if near_stands is not None and rng.uniform() < 0.65:
                target, commune, where = _to_stand(stands, near_stands[k], rng)
            else:
                target, commune, where = _to_commune(communes, near_communes[k], rng)
            scan("dispatched", lot, moment, home, nursery_device, quantity=share, **target)
            planted = _in_hours(moment + _seconds(rng.integers(DAY // 2, 8 * DAY)), rng)
            if rng.uniform() < 0.85 and planted <= AS_OF:
                scan(
                    "planted",
                    lot,
                    planted,
                    where,
                    f"planting-{commune_index.get(commune, 0) + 1:03d}",
                    quantity=max(1, int(share * rng.uniform(0.88, 1.0))),
                )
            moment = _in_hours(moment + _seconds(rng.integers(2 * DAY, 26 * DAY)), rng)
    for event_type, found in rows.items():
        lot_index, at, lon, lat, device, extra = zip(*found, strict=True)
        fields = {name: [e.get(name) for e in extra] for name in FIELDS.get(event_type, ())}
        scans.add(
            LOT,
            np.array(lot_index),
            event_type,
            np.array(at),
            np.array(lon),
            np.array(lat),
            list(device),
            **fields,
        )


def _to_stand(
    stands: Stands, near: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, str], str, tuple[float, float]]:
    """A dispatch to one of the ``near`` stands: (fields, its commune, a planting spot in it)."""
    s = int(near[rng.integers(len(near))])
    x, y = rng.uniform(-0.4, 0.4, 2) * [stands.width_m[s], stands.depth_m[s]]
    lon, lat = local_to_lonlat(
        stands.centre[s : s + 1], stands.angle[s : s + 1], np.array([x]), np.array([y])
    )
    return (
        {"to_stand": str(stands.codes[s])},
        str(stands.commune[s]),
        (float(lon[0]), float(lat[0])),
    )


def _to_commune(
    communes: Communes, near: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, str], str, tuple[float, float]]:
    """A dispatch to one of the ``near`` communes: (fields, the commune, a planting spot)."""
    c = int(near[rng.integers(len(near))])
    lon, lat = random_points_in(communes.geoms[c], 1, rng)[0]
    return {"to_commune": communes.codes[c]}, communes.codes[c], (float(lon), float(lat))


def _log_histories(
    scans: _Scans,
    communes: Communes,
    province: shapely.Geometry,
    stands: Stands,
    logs: TimberLogs,
    mills_: Mills,
    rng: np.random.Generator,
) -> tuple[Loads, np.ndarray]:
    """Felling, landing, loading, transport, receipt and processing of every log."""
    n = len(logs.codes)
    s = logs.stand
    harvest = np.strings.add("harvest-", stands.codes.astype(str))
    commune_number = {code: i + 1 for i, code in enumerate(communes.codes)}
    ranger = np.array([f"ranger-{commune_number[c]:03d}" for c in stands.commune.astype(str)])
    felled = _at_work(logs.felled_on, rng)
    scans.add(
        LOG,
        np.arange(n),
        "felled",
        felled,
        logs.lon,
        logs.lat,
        harvest[s],
        volume_m3=logs.volume_m3,
    )

    # Skidded to the stand's landing, on its edge, within four days; a few logs stay behind.
    landing_lon, landing_lat = local_to_lonlat(
        stands.centre, stands.angle, 0.45 * stands.width_m, np.zeros(len(stands))
    )
    at_landing = _in_hours(felled + _seconds(rng.integers(2 * HOUR, 4 * DAY, n)), rng)
    moved = (rng.uniform(0, 1, n) >= 0.04) & (at_landing <= AS_OF)
    m = np.flatnonzero(moved)
    scans.add(
        LOG, m, "at_landing", at_landing[m], landing_lon[s[m]], landing_lat[s[m]], harvest[s[m]]
    )

    # Trucks of 4–14 m³ take the logs away in the order they reached the landing.
    m = m[np.lexsort((at_landing[m], s[m]))]
    capacity = rng.uniform(4.0, 14.0, len(stands))
    volume = logs.volume_m3[m]
    running = np.cumsum(volume)
    first = np.r_[True, s[m][1:] != s[m][:-1]]
    stand_start = np.maximum.accumulate(np.where(first, np.arange(len(m)), 0))
    before = running - volume - np.r_[0.0, running][stand_start]
    truck = np.floor(before / capacity[s[m]]).astype(np.int64)
    key = s[m].astype(np.int64) * 1_000_000 + truck
    _, truck_of = np.unique(key, return_inverse=True)
    n_trucks = int(truck_of.max()) + 1 if len(m) else 0
    full = np.zeros(n_trucks, dtype="datetime64[s]")
    np.maximum.at(full, truck_of, at_landing[m])
    truck_stand = np.zeros(n_trucks, dtype=np.int64)
    truck_stand[truck_of] = s[m]
    leaves = _in_hours(full + _seconds(rng.integers(HOUR, 2 * DAY, n_trucks)), rng)
    shipped = leaves <= AS_OF

    # Each truck goes to the nearest mill or yard, or (three times in ten) to another one.
    landing_xy = np.column_stack([landing_lon[truck_stand], landing_lat[truck_stand]])
    mill_xy = np.column_stack([mills_.lon, mills_.lat])
    km = _km(landing_xy[:, None, :], mill_xy[None, :, :])
    goes_to = np.where(
        rng.uniform(0, 1, n_trucks) < 0.7,
        np.argmin(km, axis=1),
        rng.integers(0, len(mills_), n_trucks),
    )
    travel = km[np.arange(n_trucks), goes_to] / 30.0 * HOUR + rng.integers(
        HOUR // 2, 2 * HOUR, n_trucks
    )
    arrives = leaves + _seconds(travel)

    # Only trucks that left are loads: number them in the order they left.
    load_trucks = np.flatnonzero(shipped)
    load_trucks = load_trucks[np.argsort(leaves[load_trucks], kind="stable")]
    load_of_truck = np.full(n_trucks, -1)
    load_of_truck[load_trucks] = np.arange(len(load_trucks))
    commune_of = stands.commune.astype(str)[truck_stand[load_trucks]]
    years = leaves[load_trucks].astype("datetime64[Y]").astype(int) + 1970
    loads = Loads(
        fpl_number=[
            f"{i + 1:05d}/BKLS-{c}-{y}"
            for i, (c, y) in enumerate(zip(commune_of, years, strict=True))
        ],
        vehicle_plate=[
            f"20C-{a:03d}.{b:02d}"
            for a, b in zip(
                rng.integers(100, 1000, len(load_trucks)).tolist(),
                rng.integers(10, 100, len(load_trucks)).tolist(),
                strict=True,
            )
        ],
        destination=[mills_.names[i] for i in goes_to[load_trucks]],
        stand=truck_stand[load_trucks],
    )
    log_load = np.full(n, -1)
    log_load[m] = load_of_truck[truck_of]

    # Each log is scanned onto the truck and off it, twenty seconds apart.
    in_truck = rank_within(truck_of) * 20
    loaded_at = leaves[truck_of] + _seconds(in_truck)
    received_at = arrives[truck_of] + _seconds(in_truck)
    on = shipped[truck_of]
    loaded_logs = m[on]
    load = log_load[loaded_logs]
    scans.add(
        LOG,
        loaded_logs,
        "loaded",
        loaded_at[on],
        landing_lon[s[loaded_logs]],
        landing_lat[s[loaded_logs]],
        ranger[s[loaded_logs]],
        fpl_number=np.array(loads.fpl_number, dtype=object)[load],
        vehicle_plate=np.array(loads.vehicle_plate, dtype=object)[load],
    )
    arrived = on & (arrives[truck_of] <= AS_OF)
    got = m[arrived]
    mill = goes_to[truck_of[arrived]]
    mill_device = np.array([f"{c.lower()}-gate" for c in mills_.codes], dtype=object)
    scans.add(
        LOG,
        got,
        "received",
        received_at[arrived],
        mills_.lon[mill],
        mills_.lat[mill],
        mill_device[mill],
        destination_kind=mills_.kind[mill].astype(object),
        destination=np.array(mills_.names, dtype=object)[mill],
    )

    # At the mill most logs are sawn within weeks, a few sold on; a yard sells what it gets.
    u = rng.uniform(0, 1, len(got))
    at_mill = mills_.kind[mill] == "mill"
    outcome = np.where(
        at_mill, np.where(u < 0.55, 1, np.where(u < 0.65, 2, 0)), np.where(u < 0.5, 2, 0)
    )
    later = _in_hours(received_at[arrived] + _seconds(rng.integers(DAY, 41 * DAY, len(got))), rng)
    for code, event_type in ((1, "processed"), (2, "sold")):
        pick = (outcome == code) & (later <= AS_OF)
        scans.add(
            LOG,
            got[pick],
            event_type,
            later[pick],
            mills_.lon[mill[pick]],
            mills_.lat[mill[pick]],
            mill_device[mill[pick]],
        )

    # Rangers inspect a few logs at the landings and at the mills, and some trucks on the road.
    left_landing = np.full(n, AS_OF)
    left_landing[loaded_logs] = loaded_at[on]
    check = m[rng.uniform(0, 1, len(m)) < 0.03]
    scans.add(
        LOG,
        check,
        "inspected",
        _between(at_landing[check], left_landing[check], rng, (0.1, 0.9)),
        landing_lon[s[check]],
        landing_lat[s[check]],
        ranger[s[check]],
    )
    pick = rng.uniform(0, 1, len(got)) < 0.02
    until = np.where(later <= AS_OF, later, AS_OF)
    scans.add(
        LOG,
        got[pick],
        "inspected",
        _between(received_at[arrived][pick], until[pick], rng, (0.1, 0.9)),
        mills_.lon[mill[pick]],
        mills_.lat[mill[pick]],
        np.array([f"forest-protection-{i}" for i in rng.integers(1, 4, pick.sum())], dtype=object),
    )
    _road_checks(
        scans, province, loads, load_trucks, leaves, arrives, landing_xy, mill_xy[goes_to], rng
    )
    return loads, log_load


def _road_checks(
    scans: _Scans,
    province: shapely.Geometry,
    loads: Loads,
    load_trucks: np.ndarray,
    leaves: np.ndarray,
    arrives: np.ndarray,
    start_xy: np.ndarray,
    end_xy: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """A third of the trucks stopped half-way by a ranger checking their forest-product list."""
    stopped = np.flatnonzero(rng.uniform(0, 1, len(loads)) < 0.35)
    truck = load_trucks[stopped]
    span = (arrives[truck] - leaves[truck]).astype(np.int64)
    at = leaves[truck] + _seconds(span * rng.uniform(0.3, 0.7, len(truck)))
    keep = at <= AS_OF
    stopped, truck, at = stopped[keep], truck[keep], at[keep]
    middle = (start_xy[truck] + end_xy[truck]) / 2
    # A road may leave a concave province: the check is then at the landing.
    astray = ~shapely.intersects_xy(province, middle[:, 0], middle[:, 1])
    middle[astray] = start_xy[truck][astray]
    scans.add(
        LOAD,
        stopped,
        "inspected",
        at,
        middle[:, 0],
        middle[:, 1],
        np.array([f"checkpoint-{i}" for i in rng.integers(1, 6, len(truck))], dtype=object),
    )


def _km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances in km between lon/lat points (equirectangular: fine within a province)."""
    d = a - b
    lat = np.radians((a[..., 1] + b[..., 1]) / 2)
    return (
        np.hypot(d[..., 0] * M_PER_DEG_LON_EQUATOR * np.cos(lat), d[..., 1] * M_PER_DEG_LAT) / 1000
    )


# -- scan events and their replay ------------------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """Database ids of the lots, logs and loads (reserved before they are written)."""

    lots: np.ndarray
    logs: np.ndarray
    loads: np.ndarray

    def of(self, kind: int) -> np.ndarray:
        """The ids of one kind of item."""
        return self.all()[kind]

    def all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ids of the lots, the logs and the loads."""
        return (self.lots, self.logs, self.loads)


# The columns of ``Custody.rows``, in order.
COLUMNS = (
    "device_id",
    "client_event_id",
    "code",
    "item_type",
    "item_id",
    "event_type",
    "occurred_at",
    "actor",
    "quantity",
    "volume_m3",
    "details",
    "geom",
)
CHUNK = 20_000  # events validated and checked at once: bounds the memory their objects take
_EVENTS = TypeAdapter(list[ScanEvent])


@dataclass(frozen=True)
class Custody:
    """The checked scan events, ready to COPY, and what they left each lot and log in."""

    rows: list[bytes]  # scan_events rows in COPY text format (UTF-8), columns COLUMNS
    count: int
    codes: list[list[str]]  # the tag codes of the lots, the logs and the loads
    lots: list[ItemState]
    logs: list[ItemState]


def replay(
    p: CustodyPlan,
    ids: Ids,
    lots: SeedlingLots,
    logs: TimberLogs,
    stands: Stands,
    stand_ids: np.ndarray,
    now: datetime | None = None,
) -> Custody:
    """Check every planned scan with the scan API's checks and custody rules, in order.

    Every lot starts ``registered`` and every log ``felled`` (its tag is nailed on as it is
    cut); nothing has left the stands yet. The scans are validated as the scan API validates a
    request body (:class:`barcodes.events.ScanEvent`) and checked as it checks a batch
    (:func:`barcodes.store.replay_in_memory`), a chunk at a time.

    Raises
    ------
    barcodes.custody.ScanRejected
        A planned scan breaks a rule (a bug in the plan: nothing may be written then).

    """
    lot_states = [
        ItemState(ItemType.SEEDLING_LOT, i, status="registered", quantity=q)
        for i, q in zip(ids.lots.tolist(), lots.quantity.tolist(), strict=True)
    ]
    log_states = [
        ItemState(ItemType.TIMBER_LOG, i, status="felled", stand_id=int(stand_ids[s]))
        for i, s in zip(ids.logs.tolist(), logs.stand.tolist(), strict=True)
    ]
    load_states = [ItemState(ItemType.TRANSPORT_LOAD, i) for i in ids.loads.tolist()]
    item_codes = [
        np.array([make_code(t, i) for i in ids.of(k).tolist()], dtype=object)
        for k, t in enumerate(ITEM_TYPES)
    ]
    states = {
        code: state
        for codes, group in zip(item_codes, (lot_states, log_states, load_states), strict=True)
        for code, state in zip(codes.tolist(), group, strict=True)
    }
    harvested = np.isfinite(stands.harvest_allowed_m3)
    stand_states = {
        int(stand_ids[i]): StandState(
            str(stands.codes[i]),
            Decimal(str(stands.harvest_allowed_m3[i])) if harvested[i] else None,
            Decimal(0),
        )
        for i in np.unique(logs.stand).tolist()
    }
    loads = {
        fpl: (i, str(code))
        for fpl, i, code in zip(
            p.loads.fpl_number, ids.loads.tolist(), item_codes[LOAD].tolist(), strict=True
        )
    }
    table = _EventTable.of(p, ids, item_codes)
    parts = []
    for start in range(0, len(p), CHUNK):
        rows = slice(start, start + CHUNK)
        events = _EVENTS.validate_json(orjson.dumps(table.bodies(rows)))
        statuses = replay_in_memory(events, states, stand_states, now)
        parts.append(table.copy_text(rows, events, statuses, loads).encode())
    codes = [c.tolist() for c in item_codes]
    return Custody(parts, len(p), codes, lot_states, log_states)


@dataclass(frozen=True)
class _EventTable:
    """The plan's scans as text columns: the request bodies and the rows they become."""

    plan: CustodyPlan
    code: np.ndarray
    item_type: np.ndarray
    item_id: np.ndarray
    client_event_id: np.ndarray  # bytes (S): a quarter of the memory of str (U)
    at: np.ndarray  # ISO 8601, UTC, bytes
    geom: np.ndarray  # hex EWKB, bytes

    @classmethod
    def of(cls, p: CustodyPlan, ids: Ids, item_codes: list[np.ndarray]) -> _EventTable:
        code = np.empty(len(p), dtype=object)
        item_id = np.empty(len(p), dtype=np.int64)
        for kind in (LOT, LOG, LOAD):
            mine = p.kind == kind
            code[mine] = item_codes[kind][p.item[mine]]
            item_id[mine] = ids.of(kind)[p.item[mine]]
        return cls(
            plan=p,
            code=code,
            item_type=np.array([t.value for t in ITEM_TYPES], dtype=object)[p.kind],
            item_id=item_id,
            client_event_id=np.strings.add(
                b"gen-", np.strings.zfill(np.arange(1, len(p) + 1).astype("S"), 7)
            ),
            at=np.strings.add(np.datetime_as_string(p.at, unit="s").astype("S"), b"Z"),
            geom=point_ewkb_hex(p.lon, p.lat).astype("S"),
        )

    def bodies(self, rows: slice) -> list[dict[str, Any]]:
        """The scans as a phone would send them (JSON-ready)."""
        p = self.plan
        fields = {name: values[rows].tolist() for name, values in p.fields.items()}
        bodies = []
        for n, (device, client_id, code, event_type, at, lon, lat) in enumerate(
            zip(
                p.device[rows].tolist(),
                self.client_event_id[rows].astype(str).tolist(),
                self.code[rows].tolist(),
                p.event_type[rows].tolist(),
                self.at[rows].astype(str).tolist(),
                p.lon[rows].tolist(),
                p.lat[rows].tolist(),
                strict=True,
            )
        ):
            body = {
                "device_id": device,
                "client_event_id": client_id,
                "code": code,
                "event_type": event_type,
                "occurred_at": at,
                "location": {"type": "Point", "coordinates": (lon, lat)},
            }
            for name in FIELDS.get(event_type, ()):
                if fields[name][n] is not None:
                    body[name] = fields[name][n]
            bodies.append(body)
        return bodies

    def copy_text(
        self,
        rows: slice,
        events: list[ScanEvent],
        statuses: list[str | None],
        loads: dict[str, tuple[int, str]],
    ) -> str:
        """The ``scan_events`` rows of checked events, as the scan API writes them (COPY text)."""
        lines = []
        for event, status, item_type, item_id, at, geom in zip(
            events,
            statuses,
            self.item_type[rows].tolist(),
            self.item_id[rows].tolist(),
            self.at[rows].astype(str).tolist(),
            self.geom[rows].astype(str).tolist(),
            strict=True,
        ):
            load = loads[event.fpl_number] if event.fpl_number else None
            details = orjson.dumps(event_details(event, status, load)).decode()
            lines.append(
                "\t".join(
                    (
                        _copy_escape(event.device_id),
                        _copy_escape(event.client_event_id),
                        event.code,
                        item_type,
                        str(item_id),
                        event.event_type,
                        at,
                        ACTOR,
                        str(event.quantity) if event.quantity is not None else "\\N",
                        str(event.volume_m3) if event.volume_m3 is not None else "\\N",
                        _copy_escape(details),
                        geom,
                    )
                )
            )
        return "\n".join(lines) + "\n" if lines else ""


def _copy_escape(text: str) -> str:
    """``text`` as a COPY text field (backslash, tab, newline and carriage return escaped)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t")
        text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text


# -- what the tables hold afterwards ---------------------------------------------------------------


def certificates(p: CustodyPlan, n_lots: int) -> list[str | None]:
    """Each lot's seedling certificate number, from its ``certified`` scan (None: none yet)."""
    out: list[str | None] = [None] * n_lots
    rows = np.flatnonzero((p.kind == LOT) & (p.event_type == "certified"))
    for lot, number in zip(p.item[rows].tolist(), p.fields["certificate_no"][rows], strict=True):
        out[lot] = number
    return out


def last_seen(p: CustodyPlan, logs: TimberLogs) -> tuple[np.ndarray, np.ndarray]:
    """Where each log was last scanned (a log's position, as the scan API keeps it)."""
    rows = np.flatnonzero(p.kind == LOG)
    last = np.full(len(logs.codes), -1)
    np.maximum.at(last, p.item[rows], rows)  # rows are in time order: the latest wins
    lon, lat = logs.lon.copy(), logs.lat.copy()
    scanned = last >= 0
    lon[scanned], lat[scanned] = p.lon[last[scanned]], p.lat[last[scanned]]
    return lon, lat
