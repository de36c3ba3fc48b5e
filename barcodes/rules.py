"""The code and custody rules as one JSON-ready document, for clients that check before sending.

The field app (``/field``) validates a typed code and offers only the events an item's state
allows, with the fields each needs, offline. It reads these rules from the server instead of
holding its own copy: :func:`rules_document` is built from :mod:`barcodes.codes`,
:mod:`barcodes.custody` and the :class:`~barcodes.events.ScanEvent` model, so a change to a rule
reaches the phones with nothing rewritten by hand.
"""

from __future__ import annotations

from typing import Any

from barcodes.codes import CHECK_ALPHABET, CODE_PATTERN, NUMBER_WIDTH, PREFIXES
from barcodes.custody import EXACTLY_ONE, MACHINES, OPTIONAL_FIELDS, QUANTITY_RULES, STATES
from barcodes.decode import TREE_URL_PATTERN
from barcodes.events import MAX_BATCH, ScanEvent
from barcodes.gs1 import AIS, GS


def _field_schemas() -> dict[str, Any]:
    """The JSON Schema of every optional event field (type, bounds, lengths, choices)."""
    properties = ScanEvent.model_json_schema()["properties"]
    fields: dict[str, Any] = {}
    for name in (*OPTIONAL_FIELDS, "note"):
        schema = dict(properties[name])
        # Optional fields are "anyOf: [<the type>, null]": keep the type, drop the null.
        variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            schema.update(variants[0])
        schema.pop("default", None)
        fields[name] = schema
    return fields


# A lot's counts as barcodes.custody.ItemState names them, and as a trace shows them.
_TRACE_KEYS = {"quantity": "quantity", "dispatched": "quantity_dispatched",
               "planted": "quantity_planted"}


def rules_document() -> dict[str, Any]:
    """Everything a client needs to check a code and an event before sending it.

    Returns
    -------
    dict
        ``code``: the shape of a code (regular expression over its compact form), the type
        prefixes, the number width and the check character's alphabet (ISO 7064 hybrid system,
        modulus ``len(alphabet)``); ``item_types``: per item type its states in order (a state
        never goes back) and its events with the states they may follow (empty: any), the state
        they lead to (``null``: unchanged), the fields they need and may use, and the fields of
        which exactly one must be given; ``fields``: each optional field's JSON Schema;
        ``gs1``: the application identifiers (fixed length or ``null``, maximum length);
        ``tree_url_pattern``: a tree tag's URL; ``max_batch``: the most events one request
        may hold; ``quantities``: per event type, the seedling count its quantity may not exceed
        (``of`` minus ``less``, as keys of a lot's trace; the event adds to ``less``) and the
        rule the server refuses it with.

    """
    item_types: dict[str, Any] = {}
    for item_type, machine in MACHINES.items():
        item_types[item_type.value] = {
            "prefix": PREFIXES[item_type],
            "states": list(STATES[item_type]),
            "events": {
                name: {
                    "from": sorted(t.from_states),
                    "to": t.to_state,
                    "needs": list(t.needs),
                    "uses": list(t.uses),
                    "exactly_one": list(EXACTLY_ONE.get(name, ())),
                }
                for name, t in machine.items()
            },
        }
    quantities = {
        event: {"rule": q.rule, "of": _TRACE_KEYS[q.of], "less": _TRACE_KEYS[q.less]}
        for event, q in QUANTITY_RULES.items()
    }
    return {
        "quantities": quantities,
        "code": {
            "pattern": CODE_PATTERN,
            "number_width": NUMBER_WIDTH,
            "check_alphabet": CHECK_ALPHABET,
            "prefixes": {prefix: t.value for t, prefix in PREFIXES.items()},
        },
        # A scanned symbol's text: GS1 element strings carry the code as (10) or (21); a tree
        # tag's QR holds the tree's URL, whose id is the tree's number.
        "gs1": {"group_separator": GS, "ais": {ai: list(v) for ai, v in AIS.items()}},
        "tree_url_pattern": TREE_URL_PATTERN,
        "item_types": item_types,
        "fields": _field_schemas(),
        "max_batch": MAX_BATCH,
    }
