"""The IOC's figures: the province summary, and the refresh of the IOC layers after a load.

The summary: every figure added up from the records, with its period.

The same statements serve ``smarttrees ioc summary`` (a synchronous connection) and
``GET /api/ioc/summary`` (the server's asynchronous pool): :data:`STATEMENTS` are run by the
caller and :func:`assemble` turns their rows into the summary.

- documents: from ``ioc_documents_agency_month`` (refreshed after every document load): all
  documents recorded, those sent electronically, and the courier cost that saved at the rate
  ``SMARTTREES_COURIER_COST_VND`` per electronic document;
- citizen support: from the restricted register, aggregates only: people (one case per person),
  VND, provinces where they were stranded; withheld when fewer than
  ``SMARTTREES_PRIVACY_MIN_COUNT`` people;
- trees: from ``ioc_trees_by_commune`` and ``ioc_tree_count_month`` (refreshed when the trees
  changed since): count by category and condition, the target ``SMARTTREES_PLANTING_TARGET``,
  the communes' own targets (``smarttrees.planting_targets``, ``smarttrees load targets``) and
  the count at the end of each month of the inventory's latest year.

The layers (materialised views of migration 0011) apply the courier cost and the privacy
threshold recorded in ``smarttrees.ioc_parameters``: :func:`refresh` records the settings in
force, then refreshes each view CONCURRENTLY (readers keep the previous contents until the new
ones are committed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg import sql

from smarttrees.settings import Settings, get_settings

# In dependency order: the pairs read the register once (0017), the agency months and the
# flows add them up, the commune months add up the agency months; the commune totals (0024)
# read the register by each document's own commune.
DOCUMENT_VIEWS = (
    "ioc_doc_pair_month",
    "ioc_documents_agency_month",
    "ioc_documents_commune_month",
    "ioc_document_flows",
    "ioc_documents_commune",
)
TREE_VIEWS = ("ioc_trees_by_commune", "ioc_tree_count_month")
IOC_VIEWS = DOCUMENT_VIEWS + TREE_VIEWS

# Every refresh advances the IOC data version: tiles of the IOC layers are cached under it.
BUMP_VERSION = "UPDATE smarttrees.ioc_version SET version = version + 1"
UPSERT_PARAMETER = """
INSERT INTO smarttrees.ioc_parameters (name, value) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value
WHERE ioc_parameters.value IS DISTINCT FROM excluded.value
"""


def parameters(settings: Settings) -> dict[str, int]:
    """What the layers take from the settings."""
    return {
        "courier_cost_vnd": settings.courier_cost_vnd,
        "privacy_min_count": settings.privacy_min_count,
    }


def refresh_statements(
    settings: Settings | None = None, views: tuple[str, ...] = IOC_VIEWS
) -> list[tuple[sql.Composed | str, Any]]:
    """The statements :func:`refresh` runs, with their parameters (for an async connection too)."""
    settings = settings or get_settings()
    statements: list[tuple[sql.Composed | str, Any]] = [
        (UPSERT_PARAMETER, [name, value]) for name, value in parameters(settings).items()
    ]
    for name in views:
        view = sql.Identifier("smarttrees", name)
        statements.append((sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(view), None))
    statements.append((BUMP_VERSION, None))
    return statements


def record_parameters(cur: psycopg.Cursor[Any], settings: Settings | None = None) -> None:
    """Write the settings the IOC layers apply into ``smarttrees.ioc_parameters``.

    For a caller that refreshes the views itself (``smarttrees generate`` refreshes every
    materialised view after its bulk load, not concurrently).
    """
    for name, value in parameters(settings or get_settings()).items():
        cur.execute(UPSERT_PARAMETER, [name, value])
    cur.execute(BUMP_VERSION)


def refresh(
    conn: psycopg.Connection[Any],
    settings: Settings | None = None,
    views: tuple[str, ...] = IOC_VIEWS,
) -> None:
    """Record the parameters and refresh ``views`` without blocking their readers.

    Parameters
    ----------
    conn
        A connection; the refresh runs in its current transaction (committed by the caller).
    settings
        Where the parameters come from; ``None`` reads the environment.
    views
        Which views, in dependency order.

    """
    with conn.cursor() as cur:
        for statement, params in refresh_statements(settings, views):
            cur.execute(statement, params)


PROVINCE = """
SELECT code, name FROM smarttrees.admin_units
WHERE level = 'province' AND valid_to IS NULL ORDER BY code LIMIT 1
"""
DOCUMENTS = """
SELECT coalesce(sum(sent), 0)::bigint, coalesce(sum(sent_electronic), 0)::bigint,
       min(first_on), max(last_on), count(DISTINCT agency_code) FILTER (WHERE sent > 0)
FROM smarttrees.ioc_documents_agency_month
"""
SUPPORT = """
SELECT count(*), coalesce(sum(amount_vnd), 0)::bigint, min(paid_on), max(paid_on),
       count(DISTINCT stranded_province),
       greatest(%(k)s, smarttrees.ioc_parameter('privacy_min_count', %(k)s))
FROM restricted.citizen_support_cases
"""
TREES = """
SELECT coalesce(sum(trees), 0)::bigint, coalesce(sum(urban), 0)::bigint,
       coalesce(sum(scattered), 0)::bigint, coalesce(sum(plantation), 0)::bigint,
       coalesce(sum(good), 0)::bigint, coalesce(sum(fair), 0)::bigint,
       coalesce(sum(poor), 0)::bigint, coalesce(sum(dead), 0)::bigint,
       coalesce(sum(removed), 0)::bigint, coalesce(sum(condition_unknown), 0)::bigint
FROM smarttrees.ioc_trees_by_commune
"""
# The communes with a planting target: how many, the targets added up, their trees today.
TARGETS = """
SELECT count(*), coalesce(sum(p.target), 0)::bigint, coalesce(sum(t.trees), 0)::bigint
FROM smarttrees.planting_targets p
LEFT JOIN smarttrees.ioc_trees_by_commune t USING (commune_code)
"""
TREE_HISTORY = """
SELECT month, sum(planted)::bigint, sum(trees)::bigint
FROM smarttrees.ioc_tree_count_month GROUP BY month ORDER BY month
"""
# Whether the tree views are behind the trees (every change of a tree adds a history row).
TREES_BEHIND = """
SELECT coalesce((SELECT max(version) FROM smarttrees.ioc_trees_by_commune), -1)
       < (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history)
"""
STATEMENTS = {
    "province": PROVINCE,
    "documents": DOCUMENTS,
    "support": SUPPORT,
    "trees": TREES,
    "tree_history": TREE_HISTORY,
    "targets": TARGETS,
}

DEFINITIONS: dict[str, dict[str, str]] = {
    "documents.total": {
        "en": "Documents recorded in the register (each counted once, at its sender).",
        "vi": "Số văn bản trong sổ đăng ký (mỗi văn bản tính một lần, ở cơ quan gửi).",
    },
    "documents.electronic": {
        "en": "Documents sent electronically between agencies instead of by courier.",
        "vi": "Số văn bản gửi điện tử giữa các cơ quan thay cho gửi qua bưu chính.",
    },
    "documents.courier_cost_saved_vnd": {
        "en": "Electronic documents × the courier cost of one document (VND).",
        "vi": "Số văn bản điện tử × chi phí gửi một văn bản qua bưu chính (đồng).",
    },
    "citizen_support.people": {
        "en": "Citizens in the support register (one application per person), any status.",
        "vi": "Số công dân trong sổ hỗ trợ (mỗi người một hồ sơ), mọi trạng thái.",
    },
    "citizen_support.amount_vnd": {
        "en": "Sum of the amounts of those applications (VND).",
        "vi": "Tổng số tiền của các hồ sơ đó (đồng).",
    },
    "citizen_support.provinces": {
        "en": "Provinces where the applicants were stranded.",
        "vi": "Số tỉnh, thành nơi người dân bị mắc kẹt.",
    },
    "trees.total": {
        "en": "Trees in the inventory today, by category.",
        "vi": "Số cây trong cơ sở dữ liệu hiện nay, theo loại.",
    },
    "trees.progress": {
        "en": "Trees today ÷ the province's target.",
        "vi": "Số cây hiện nay ÷ chỉ tiêu của tỉnh.",
    },
    "trees.commune_targets": {
        "en": "Communes with a planting target (smarttrees load targets): their targets added "
              "up, their trees today, and trees ÷ targets.",
        "vi": "Các xã có chỉ tiêu trồng cây: tổng chỉ tiêu, số cây hiện nay và tỷ lệ hoàn "
              "thành.",
    },
    "trees.history": {
        "en": "Trees at the end of each month (planted by then, or without a planting date).",
        "vi": "Số cây cuối mỗi tháng (đã trồng đến khi đó, hoặc không rõ ngày trồng).",
    },
}


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def assemble(rows: dict[str, list[tuple[Any, ...]]], settings: Settings) -> dict[str, Any]:
    """The summary from the rows of each of :data:`STATEMENTS` (``name → fetchall()``).

    Parameters
    ----------
    rows
        The rows each statement returned.
    settings
        The courier cost and the planting target come from here.

    Returns
    -------
    dict
        JSON-ready: ``province``, ``documents``, ``citizen_support``, ``trees``, ``definitions``.

    """
    province = rows["province"][0] if rows["province"] else (None, None)
    total, electronic, first_on, last_on, agencies = rows["documents"][0]
    people, amount, paid_from, paid_to, provinces, k = rows["support"][0]
    withheld = 0 < people < k
    trees = rows["trees"][0]
    communes, commune_target, commune_trees = rows["targets"][0]
    rate = settings.courier_cost_vnd
    target = settings.planting_target
    return {
        "province": {"code": province[0], "name": province[1]},
        "documents": {
            "period": {"from": _day(first_on), "to": _day(last_on)},
            "total": total,
            "electronic": electronic,
            "electronic_share": round(electronic / total, 4) if total else None,
            "courier_cost_vnd_each": rate,
            "courier_cost_saved_vnd": electronic * rate,
            "sending_agencies": agencies,
        },
        "citizen_support": {
            "period": {"from": _day(paid_from), "to": _day(paid_to)},
            "people": None if withheld else people,
            "amount_vnd": None if withheld else amount,
            "provinces": provinces,
            "suppressed": withheld,
            "min_count": k,
        },
        "trees": {
            "total": trees[0],
            "by_category": dict(zip(("urban", "scattered", "plantation"), trees[1:4], strict=True)),
            "by_condition": dict(
                zip(("good", "fair", "poor", "dead", "removed", "unknown"), trees[4:], strict=True)
            ),
            "target": target,
            "progress": round(trees[0] / target, 4) if target else None,
            "commune_targets": {
                "communes": communes,
                "target": commune_target,
                "trees": commune_trees,
                "progress": round(commune_trees / commune_target, 4) if commune_target else None,
            },
            "history": [
                {"month": month.strftime("%Y-%m"), "planted": planted, "trees": count}
                for month, planted, count in rows["tree_history"]
            ],
        },
        "definitions": DEFINITIONS,
    }


def summary(conn: Any, settings: Settings) -> dict[str, Any]:
    """The summary read over a synchronous connection (brings the tree views up to date).

    Parameters
    ----------
    conn
        A psycopg connection to the SmartTrees database.
    settings
        Rates, threshold and target.

    """
    behind = conn.execute(TREES_BEHIND).fetchone()
    if behind and behind[0]:
        refresh(conn, settings, TREE_VIEWS)
    params = {"k": settings.privacy_min_count}
    return assemble(
        {name: conn.execute(query, params).fetchall() for name, query in STATEMENTS.items()},
        settings,
    )
