"""Headers: every alias of both presets, varied as people type them, feeds its field or is refused.

The rule under test (``etl.headers``): the most specific alias wins; a header that matches two
fields equally well is refused with one message naming both.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest

from etl.errors import InputError
from etl.mappings import UNIT_TABLES, Mapping, load_mapping
from smarttrees.domain import fold
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.survey_writer import make_survey, write_survey

PRESETS = ["vi_field_survey", "en_survey", None]      # None: the default, both presets at once


def variants(alias: str) -> dict[str, str]:
    """Ways a person types a header: case, spacing, diacritics dropped."""
    return {
        "upper": alias.upper(), "lower": alias.lower(), "title": alias.title(),
        "spaced": f"  {alias.replace(' ', '   ')} ", "plain": fold(alias),
        "plain upper": fold(alias).upper(),
    }


def others_with_same_letters(mapping: Mapping, name: str, header: str) -> set[str]:
    """Fields other than ``name`` with an alias spelt with the same letters as ``header``."""
    return {other for other, spec in mapping.fields.items() if other != name
            and any(fold(a) == fold(header) for a in spec.columns)}


def keeps_diacritics_of(mapping: Mapping, name: str, header: str) -> bool:
    """True when ``header`` is one of the field's aliases apart from case and spacing."""
    def key(text: str) -> str:
        return " ".join(text.split()).casefold()
    return any(key(a) == key(header) for a in mapping.fields[name].columns)


def cases(preset: str | None) -> list[tuple[str, str, str]]:
    mapping = load_mapping(preset)
    return [(name, how, header) for name, spec in mapping.fields.items()
            for alias in spec.columns for how, header in variants(alias).items()]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_alias_varied_feeds_its_field_or_is_refused_naming_both(preset: str | None) -> None:
    mapping = load_mapping(preset)
    checked = refused = 0
    for name, how, header in cases(preset):
        rivals = set() if keeps_diacritics_of(mapping, name, header) else \
            others_with_same_letters(mapping, name, header)
        if rivals:
            with pytest.raises(InputError) as info:
                mapping.match([header], "survey.csv")
            message = str(info.value)
            assert message.startswith("survey.csv, row 1, field "), message
            for field in {name, *rivals}:
                assert field.replace("_", " ") in message, (header, message)
            refused += 1
        else:
            assert mapping.match([header], "survey.csv") == {name: 0}, (preset, how, header)
        checked += 1
    assert checked > 100
    if preset != "en_survey":
        assert refused > 0     # "Loai cay": species or category


@pytest.mark.parametrize("preset", PRESETS)
def test_a_unit_in_the_header_gives_the_field_its_unit(preset: str | None) -> None:
    mapping = load_mapping(preset)
    seen = 0
    for name, spec in mapping.fields.items():
        if name not in UNIT_TABLES:
            continue
        for alias, (unit, factor) in itertools.product(spec.columns, UNIT_TABLES[name].items()):
            base = alias.split("(")[0].strip()
            if not base or others_with_same_letters(mapping, name, base):
                continue
            for header in (f"{base} ({unit})", f"{base} [{unit}]", f"{base}({unit.upper()})"):
                columns, per_file = mapping.for_headers([header], "survey.csv")
                assert columns == {name: 0}, header
                if any(" ".join(a.split()).casefold() == " ".join(header.split()).casefold()
                       for a in spec.columns):
                    continue       # an alias as written: the mapping's unit
                assert per_file.fields[name].factor == pytest.approx(factor), header
                seen += 1
    assert seen > 10


FIELD_SHEET = {"Loài cây": "species", "Tên loài": "species", "ĐK (cm)": "dbh",
               "D1.3 (cm)": "dbh", "Hvn (m)": "height", "Dt (m)": "crown",
               "Kinh độ (E)": "lon", "Vĩ độ (N)": "lat", "Mã số cây": "tree_code",
               "Chu vi (cm)": "circumference", "Tọa độ X": "x", "Toạ độ Y": "y"}


@pytest.mark.parametrize(("header", "name"), FIELD_SHEET.items())
def test_common_vietnamese_field_sheet_headers(header: str, name: str) -> None:
    for typed in (header, header.upper(), f" {header} "):
        assert load_mapping(None).match([typed]) == {name: 0}


def test_species_and_category_side_by_side() -> None:
    mapping = load_mapping(None)
    headers = ["Mã cây", "Loại cây", "Loài cây", "Kinh độ", "Vĩ độ"]
    assert mapping.match(headers) == {"tree_code": 0, "category": 1, "species": 2, "lon": 3,
                                      "lat": 4}


def stored(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT t.tree_code, s.vietnamese_name, t.category, t.dbh_cm, t.height_m "
        "FROM smarttrees.trees t JOIN smarttrees.species s ON s.id = t.species_id "
        "ORDER BY t.tree_code").fetchall()


def test_loai_cay_survey_loads_as_the_ten_cay_one(settings_env: str, conn: psycopg.Connection,
                                                  tmp_path: Path) -> None:
    survey = make_survey(40)
    path = write_survey(survey.rename(columns={"Tên cây": "Loài cây", "Đường kính (cm)": "ĐK (mm)",
                                               "Kinh độ": "Kinh độ (E)", "Vĩ độ": "Vĩ độ (N)"})
                        .assign(**{"ĐK (mm)": survey["Đường kính (cm)"] * 10}),
                        tmp_path / "loai_cay.csv")
    outcome = run_cli("load", "trees", str(path), env=cli_env(SMARTTREES_DATABASE_URL=settings_env))
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert "40 rows (EPSG:4326): inserted 40, updated 0, unchanged 0, refused 0" in outcome.stdout
    rows = stored(conn)
    assert [r[0] for r in rows] == sorted(survey["Mã cây"])
    by_code = survey.set_index("Mã cây")
    for code, species, _category, dbh, height in rows:
        assert species == by_code.loc[code, "Tên cây"]
        assert dbh == pytest.approx(by_code.loc[code, "Đường kính (cm)"], abs=1e-4)
        assert height == pytest.approx(by_code.loc[code, "Chiều cao (m)"], abs=1e-4)


def test_a_header_meaning_two_fields_is_one_line_and_nothing_changes(
        settings_env: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    write_survey(make_survey(5, prefix="OLD"), tmp_path / "old.csv")
    env = cli_env(SMARTTREES_DATABASE_URL=settings_env)
    assert run_cli("load", "trees", str(tmp_path / "old.csv"), env=env).code == 0
    before = stored(conn)
    path = write_survey(make_survey(5).drop(columns=["Loại cây"])
                        .rename(columns={"Tên cây": "Loai cay"}), tmp_path / "plain.csv")
    outcome = run_cli("load", "trees", str(path), env=env)
    assert outcome.code == 1
    assert outcome.error_lines == [
        "error: plain.csv, row 1, field 'Loai cay': header 'Loai cay' could mean category "
        "('Loại cây') or species ('Loài cây') (the same apart from case and diacritics): write "
        "it as one of them, or give a --mapping"]
    assert stored(conn) == before
