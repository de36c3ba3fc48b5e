"""The chain-of-custody rules as data: which event may follow which state, and the totals.

Seedling lot: registered → certified → ready → dispatched (partial dispatches, never more than
the lot holds) → planted (never more than was dispatched). Timber log: felled → at_landing (the
log leaves its stand: the stand's harvest allowance must cover it) → loaded (on a transport,
with its forest-product list number) → received (mill or yard) → processed or sold. Every item
type may be ``inspected`` at any time, which records where it was seen and changes nothing.

:func:`apply` checks one event against an item's state held in memory and updates that state;
:mod:`barcodes.store` loads the states under row locks, applies a whole batch, and writes back
only when every event passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from barcodes.codes import ItemType
from barcodes.events import DETAIL_FIELDS, ScanEvent
from smarttrees.errors import SmartTreesError

# Event fields that only some events use; anything else given is refused, so a phone that
# sends a quantity with the wrong event hears about it instead of having it silently dropped.
OPTIONAL_FIELDS = ("quantity", "volume_m3", *DETAIL_FIELDS)
# Fields of which an event must give exactly one (a dispatch goes to a commune or to a stand).
EXACTLY_ONE: dict[str, tuple[str, ...]] = {"dispatched": ("to_commune", "to_stand")}


@dataclass(frozen=True)
class Transition:
    """An event type of one item type: the states it may follow and the state it leads to.

    ``from_states`` empty means any state; ``to_state`` ``None`` leaves the state as it is.
    """

    event_type: str
    from_states: frozenset[str]
    to_state: str | None
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()


def _t(event: str, sources: str, target: str | None, needs: str = "", uses: str = "") -> Transition:
    return Transition(
        event, frozenset(sources.split()), target, tuple(needs.split()), tuple(uses.split())
    )


INSPECTED = _t("inspected", "", None)
STATES: dict[ItemType, tuple[str, ...]] = {
    ItemType.SEEDLING_LOT: ("registered", "certified", "ready", "dispatched", "planted"),
    ItemType.TIMBER_LOG: ("felled", "at_landing", "loaded", "received", "processed", "sold"),
    ItemType.TRANSPORT_LOAD: (),
    ItemType.TREE: (),
}
MACHINES: dict[ItemType, dict[str, Transition]] = {
    ItemType.SEEDLING_LOT: {
        t.event_type: t
        for t in (
            _t("certified", "registered", "certified", uses="certificate_no"),
            _t("ready", "certified", "ready"),
            # Partial dispatches: a lot keeps being dispatched until it is empty.
            _t(
                "dispatched",
                "ready dispatched planted",
                "dispatched",
                "quantity",
                "to_commune to_stand",
            ),
            _t("planted", "dispatched planted", "planted", "quantity"),
            INSPECTED,
        )
    },
    ItemType.TIMBER_LOG: {
        t.event_type: t
        for t in (
            _t("felled", "felled", "felled", uses="volume_m3"),
            _t("at_landing", "felled", "at_landing"),
            _t("loaded", "at_landing", "loaded", "fpl_number", "load_code vehicle_plate"),
            _t("received", "loaded", "received", "destination_kind destination"),
            _t("processed", "received", "processed"),
            _t("sold", "received", "sold"),
            INSPECTED,
        )
    },
    ItemType.TRANSPORT_LOAD: {"inspected": INSPECTED},
    ItemType.TREE: {"inspected": INSPECTED},
}

# The rules a scan can break, each named in a Problem (the API maps them to statuses).
RULES = (
    "invalid_event",
    "bad_code",
    "wrong_item_type",
    "missing_field",
    "field_not_used",
    "future_time",
    "before_previous_event",
    "outside_province",
    "unknown_destination",
    "unknown_load",
    "unknown_code",
    "transition",
    "lot_quantity",
    "planted_quantity",
    "harvest_allowance",
    "client_event_id_reused",
)


@dataclass(frozen=True, order=True)
class Problem:
    """Why one event of a request was refused; ``rule`` is a stable name a client can test."""

    index: int  # position of the event in the request
    client_event_id: str | None
    code: str | None
    rule: str
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:  # a rule's name is part of the API: never made up on the spot
            raise ValueError(f"unknown scan rule {self.rule!r}")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class StandState:
    """A stand's harvest allowance and the volume that has left it so far (m³)."""

    code: str
    allowed_m3: Decimal | None
    out_m3: Decimal


@dataclass
class ItemState:
    """What the rules need to know of one item, loaded under a row lock."""

    item_type: ItemType
    item_id: int
    status: str | None = None
    last_at: datetime | None = None
    quantity: int = 0  # seedling lot: seedlings in the lot
    dispatched: int = 0
    planted: int = 0
    volume_m3: Decimal = Decimal(0)  # timber log
    stand_id: int | None = None
    changed: bool = field(default=False, compare=False)


def transition_for(item_type: ItemType, event_type: str) -> Transition | None:
    """The transition ``event_type`` names for ``item_type``, if that item type has it."""
    return MACHINES[item_type].get(event_type)


def check_shape(event: ScanEvent, item_type: ItemType) -> tuple[str, str] | None:
    """(rule, message) when the event type or its fields do not fit the item type, else None."""
    transition = transition_for(item_type, event.event_type)
    if transition is None:
        owners = [t.value for t, m in MACHINES.items() if event.event_type in m]
        allowed = ", ".join(MACHINES[item_type])
        if owners:
            return (
                "wrong_item_type",
                f"event {event.event_type!r} is for {' or '.join(owners)}, but {event.code} is "
                f"a {item_type.value} (its events: {allowed})",
            )
        return ("invalid_event", f"unknown event type {event.event_type!r}: use one of {allowed}")
    for name in transition.needs:
        if getattr(event, name) is None:
            return ("missing_field", f"{event.event_type} needs {name}")
    one_of = EXACTLY_ONE.get(event.event_type, ())
    if one_of and sum(getattr(event, name) is not None for name in one_of) != 1:
        return ("missing_field", f"{event.event_type} needs exactly one of {' and '.join(one_of)}")
    allowed_fields = set(transition.needs) | set(transition.uses)
    for name in OPTIONAL_FIELDS:
        if getattr(event, name) is not None and name not in allowed_fields:
            return ("field_not_used", f"{name} is not used by a {event.event_type} event")
    return None


def apply(
    event: ScanEvent, item: ItemState, stands: dict[int, StandState]
) -> tuple[str, str] | None:
    """Check ``event`` against the item's state and, when it passes, update that state.

    Returns (rule, message) when a custody rule is broken; the state is then left untouched.
    The shape was checked before (:func:`check_shape`).
    """
    transition = MACHINES[item.item_type][event.event_type]
    if item.last_at is not None and event.occurred_at < item.last_at:
        return (
            "before_previous_event",
            f"{event.code}: {event.occurred_at.isoformat()} is before its previous event "
            f"({item.last_at.isoformat()})",
        )
    if transition.from_states and item.status not in transition.from_states:
        expected = " or ".join(sorted(transition.from_states))
        return (
            "transition",
            f"{event.code} is {item.status}: {event.event_type} needs it to be {expected}",
        )
    broken = _check_totals(event, item, stands)
    if broken:
        return broken
    _update(event, item, transition, stands)
    return None


@dataclass(frozen=True)
class QuantityRule:
    """A seedling lot's count an event may not exceed: ``of`` minus ``less`` of the lot's state.

    The event adds its quantity to ``less`` (a dispatch to the seedlings dispatched, a planting
    to those planted). Exported as data by :func:`barcodes.rules.rules_document`, so the field
    app checks a quantity on the phone with the same rule.
    """

    rule: str
    of: str
    less: str
    message: str

    def left(self, item: ItemState) -> int:
        """How many seedlings the event may still take."""
        return int(getattr(item, self.of)) - int(getattr(item, self.less))


QUANTITY_RULES: dict[str, QuantityRule] = {
    "dispatched": QuantityRule(
        "lot_quantity", "quantity", "dispatched",
        "{code}: cannot dispatch {quantity} seedlings, only {left} of {total} are left in the lot",
    ),
    "planted": QuantityRule(
        "planted_quantity", "dispatched", "planted",
        "{code}: cannot plant {quantity} seedlings, only {left} dispatched seedlings are not yet "
        "planted",
    ),
}


def _check_totals(
    event: ScanEvent, item: ItemState, stands: dict[int, StandState]
) -> tuple[str, str] | None:
    limit = QUANTITY_RULES.get(event.event_type)
    if limit is not None:
        left = limit.left(item)
        if event.quantity is not None and event.quantity > left:
            return limit.rule, limit.message.format(
                code=event.code, quantity=event.quantity, left=left, total=item.quantity)
    if event.event_type == "at_landing" and item.stand_id is not None:
        stand = stands[item.stand_id]
        allowed = stand.allowed_m3 if stand.allowed_m3 is not None else Decimal(0)
        after = stand.out_m3 + item.volume_m3
        if after > allowed:
            return (
                "harvest_allowance",
                f"{event.code}: taking {item.volume_m3} m³ out of stand {stand.code} would make "
                f"{after} m³, more than its harvest allowance of {allowed} m³",
            )
    return None


def _update(
    event: ScanEvent, item: ItemState, transition: Transition, stands: dict[int, StandState]
) -> None:
    item.last_at = event.occurred_at
    if transition.to_state is not None:
        order = STATES[item.item_type]
        # A lot dispatched again after some planting stays "planted": states never go back.
        if item.status is None or order.index(transition.to_state) > order.index(item.status):
            item.status = transition.to_state
        item.changed = True
    if event.event_type == "dispatched" and event.quantity:
        item.dispatched += event.quantity
    elif event.event_type == "planted" and event.quantity:
        item.planted += event.quantity
    elif event.event_type == "felled" and event.volume_m3 is not None:
        item.volume_m3 = Decimal(str(event.volume_m3)).quantize(Decimal("0.0001"))
    elif event.event_type == "at_landing" and item.stand_id is not None:
        stands[item.stand_id].out_m3 += item.volume_m3


def apply_batch(
    batch: Iterable[tuple[int, ScanEvent, ItemState]], stands: dict[int, StandState]
) -> tuple[dict[int, str | None], list[Problem]]:
    """Apply a batch's events in order, each to its item's state, as one scan request does.

    ``batch`` holds (index in the request, event, the state of the event's item). Returns the
    item's status after each event (by index) and every rule broken; an event that breaks a rule
    leaves its item's state untouched, and the caller stores nothing when any did.
    """
    statuses: dict[int, str | None] = {}
    problems: list[Problem] = []
    for i, event, item in batch:
        broken = apply(event, item, stands)
        if broken:
            problems.append(Problem(i, event.client_event_id, event.code, *broken))
        statuses[i] = item.status
    return statuses, problems


class ScanRejected(SmartTreesError):
    """A request's events were refused; nothing of it was stored. ``problems`` says why."""

    rule = "scan_rejected"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"event {first.index}: {first.rule}: {first.message}{more}")
