"""Settings, read from the environment (prefix ``SMARTTREES_``) when asked for, never at import."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything SmartTrees can be told from outside.

    With ``database_url`` unset, SmartTrees runs its own PostgreSQL + PostGIS cluster in
    ``data_dir`` (see :mod:`smarttrees.cluster`).
    """

    model_config = SettingsConfigDict(env_prefix="SMARTTREES_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        None, description="postgresql:// URL of an existing PostGIS; unset = the managed cluster"
    )
    data_dir: Path = Field(
        default_factory=lambda: locate_data_dir().path,
        description="folder of the managed cluster and other local state; unset = found "
        "(see locate_data_dir)",
    )
    db_port: int | None = Field(
        None, ge=1024, le=65535, description="TCP port of the managed cluster; unset = derived"
    )
    db_name: str = Field("smarttrees", description="database name in the managed cluster")
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    pool_timeout_s: float = Field(
        5.0, gt=0, description="longest a request waits for a free database connection (then 503)"
    )
    statement_timeout_ms: int = Field(
        10_000, ge=0, description="longest one API query may run, in ms (then 503); 0 = no limit"
    )
    download_max_features: int = Field(
        2_000_000, ge=1, description="most features one items download (f=gpkg|fgb|csv) holds"
    )
    download_timeout_s: int = Field(
        300, ge=1, description="longest database time of one items download, in seconds"
    )
    filter_concurrency: int | None = Field(
        None,
        ge=1,
        description="requests with a CQL2 filter served at once per process;"
        " unset = pool_max_size - 2 (at least 1), so other requests always find a connection",
    )

    # Read replicas and poolers (issue 17).
    replica_urls: str | None = Field(
        None,
        description="postgresql:// URLs of streaming replicas of the database, separated by"
        " commas or spaces: the server's reads go to them (see `replicas`)",
    )
    replica_max_lag_s: float = Field(
        5.0, gt=0, description="a replica further behind the primary is taken out of rotation"
    )
    replica_check_s: float = Field(
        1.0, gt=0, le=60, description="how often the server checks its replicas' health and lag"
    )
    read_own_writes_s: float = Field(
        10.0,
        ge=0,
        description="after a write, the same client (cookie) and token read from the primary"
        " for this long",
    )
    transaction_pooler: bool = Field(
        False,
        description="the database URLs lead to a pooler in transaction mode (PgBouncer):"
        " the server's connections then prepare no statements on the server",
    )

    host: str = Field("127.0.0.1", description="address `smarttrees serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="port `smarttrees serve` listens on")
    workers: int = Field(
        1, ge=1, le=64, description="server processes of `smarttrees serve` (one per core)"
    )
    public_url: str | None = Field(
        None, description="URL clients see the server at; unset = http://host:port"
    )
    basemap_url: str | None = Field(
        None, description="XYZ raster tile URL for the web map; none by default (works offline)"
    )
    default_page_size: int = Field(100, ge=1)
    max_page_size: int = Field(10_000, ge=1)
    exact_count_max: int = Field(
        100_000, ge=0, description="count exactly up to this many matches, estimate above"
    )
    tile_min_zoom_points: int = Field(
        13, ge=0, le=22, description="zoom from which tiles carry individual trees"
    )
    tile_max_features: int = Field(
        8_000,
        ge=1,
        description="cap of features in one tile; a trees tile over it carries grid counts"
        " (8,000 trees with their attributes make about 400 KB)",
    )
    tile_cache_mb: int = Field(64, ge=0, description="in-process cache of rendered tiles; 0 = off")
    tiles_archive: Path | None = Field(
        None,
        description="PMTiles archive (`smarttrees tiles export`) the server offers at"
        " /tiles/archive.pmtiles, with range requests; unset = that route answers 404",
    )
    map_tiles_archive_url: str | None = Field(
        None,
        description="URL of a PMTiles archive the web map reads its vector tiles from (a static"
        " host, or /tiles/archive.pmtiles); unset = the server's tile routes",
    )
    max_body_mb: float = Field(
        10, gt=0, description="largest request body of a write (features, scans), MiB; above: 413"
    )
    filter_max_terms: int = Field(
        200, ge=1, description="most conditions and operations in one CQL2 filter; 400 above"
    )
    filter_max_depth: int = Field(
        10, ge=1, le=50, description="deepest nesting of groups and operations in a CQL2 filter"
    )

    carbon_fraction: float = Field(
        0.47, gt=0, le=1, description="carbon per unit of dry biomass (IPCC 2006 default 0.47)"
    )
    carbon_chave_e: float = Field(
        0.0,
        ge=-3,
        le=3,
        description="environmental-stress term E of Chave et al. 2014's equation without height",
    )
    carbon_after_load: bool = Field(
        True,
        description="recompute the carbon figures at the end of a tree, species or admin-unit"
        " load that changed them (false: the next reader or `smarttrees carbon refresh` does it)",
    )
    carbon_refit_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="refit the height-diameter models (and recompute every tree) when a species'"
        " count of measured trees moved by more than this share of the count they were fitted on",
    )

    load_max_field_bytes: int = Field(
        1 << 20, ge=1024, description="longest cell a loaded file may hold, in bytes"
    )
    load_max_row_bytes: int = Field(
        4 << 20, ge=1024, description="longest row a loaded file may hold, in bytes"
    )
    load_batch_bytes: int = Field(
        8 << 20, ge=1 << 16, description="bytes of a file read and checked at a time"
    )

    unit_code_pattern: str = Field(
        r"^[0-9]+$",
        description="regular expression every administrative unit code must match: Vietnam's "
        "statistics codes are digits (the default); elsewhere, e.g. ^[A-Za-z0-9]{1,16}$",
    )

    gs1_company_prefix: str | None = Field(
        None, pattern=r"^\d{6,12}$", description="GS1 company prefix for GS1-128 labels"
    )

    # The IOC (issue 13).
    courier_cost_vnd: int = Field(
        4_000, ge=0, description="courier cost a document sent electronically saves, VND"
    )
    privacy_min_count: int = Field(
        5, ge=1, description="citizen-support figures of fewer people are withheld"
    )
    planting_target: int = Field(
        1_130_000, ge=0, description="the province's tree count target (planting progress)"
    )

    # Tree care (issue 19).
    care_cycle_months: dict[str, dict[str, int]] = Field(
        default_factory=lambda: _default_cycle(),
        description="months between inspections per category and risk class, as JSON "
        '(e.g. {"urban": {"low": 36, "moderate": 12, "high": 6, "extreme": 1}, ...})',
    )
    care_report_photo_mb: float = Field(
        8, gt=0, le=40, description="largest photo of a public hazard report, MiB; above: 413"
    )
    care_reports_per_hour: int = Field(
        10, ge=1, description="public hazard reports one address may send per hour; above: 429"
    )
    field_offline_max_tiles: int = Field(
        4000,
        ge=1,
        description="most vector tiles the field app keeps of an area for offline use; a plan"
        " of more is a 400",
    )
    raster_workers: int | None = Field(
        None, ge=1, description="worker processes of one zonal statistics run; unset = one per core"
    )

    @field_validator("care_cycle_months")
    @classmethod
    def _cycle(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        from smarttrees.care.vocabulary import check_cycle

        return check_cycle(value)

    @field_validator("unit_code_pattern")
    @classmethod
    def _is_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @property
    def filter_slots(self) -> int:
        """How many requests with a CQL2 filter one process serves at once."""
        return self.filter_concurrency or max(1, self.pool_max_size - 2)

    @property
    def replicas(self) -> list[str]:
        """The replica URLs of ``replica_urls``, in the order given."""
        return (self.replica_urls or "").replace(",", " ").split()

    @property
    def data_dir_origin(self) -> str:
        """Why ``data_dir`` is where it is, for ``smarttrees db status`` and notices."""
        if "data_dir" in self.model_fields_set:
            return "from SMARTTREES_DATA_DIR"
        return locate_data_dir().why

    @property
    def server_url(self) -> str:
        """Base URL of the HTTP server as clients reach it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _default_cycle() -> dict[str, dict[str, int]]:
    from smarttrees.care.vocabulary import DEFAULT_CYCLE_MONTHS

    return {category: dict(months) for category, months in DEFAULT_CYCLE_MONTHS.items()}


DATA_FOLDER = ".smarttrees"
ROOT_DATA_DIR = Path("/var/lib/smarttrees")


@dataclass(frozen=True)
class DataDir:
    """Where the managed cluster lives, and why there."""

    path: Path
    why: str


def locate_data_dir(cwd: Path | None = None) -> DataDir:
    """The managed cluster's folder when ``SMARTTREES_DATA_DIR`` is unset: the same from anywhere.

    Walking up from ``cwd``, the first folder that holds a ``.smarttrees`` folder or the
    project's ``pyproject.toml`` (``name = "smarttrees"``) is the project folder, and its
    ``.smarttrees`` the data folder. Elsewhere, the per-user data folder (platformdirs'
    ``user_data_path``, e.g. ``~/.local/share/smarttrees``); for root ``/var/lib/smarttrees``,
    since the server then runs as ``postgres``, which cannot enter ``/root``.
    """
    try:
        here = (cwd or Path.cwd()).resolve()
    except OSError:     # the current folder was removed
        here = None
    for folder in ([here, *here.parents] if here else []):
        if (folder / DATA_FOLDER).is_dir() or _is_project(folder / "pyproject.toml"):
            return DataDir(folder / DATA_FOLDER, f"project folder {folder}")
    if os.geteuid() == 0:
        return DataDir(ROOT_DATA_DIR, f"root's folder: no project folder above {here}")
    import platformdirs

    return DataDir(platformdirs.user_data_path("smarttrees"),
                   f"per-user folder: no project folder above {here}")


def _is_project(pyproject: Path) -> bool:
    try:
        with pyproject.open("rb") as handle:
            return bool(tomllib.load(handle).get("project", {}).get("name") == "smarttrees")
    except (OSError, tomllib.TOMLDecodeError):
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read on first use."""
    return Settings()
