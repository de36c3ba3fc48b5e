"""`smarttrees load trees` on random files: a counted result or one line, never a traceback.

Hypothesis writes surveys with random headers (aliases of the presets, typed any way, and
noise), random cells (numbers with decimal commas, dates, names, junk, control characters),
random delimiters and encodings. Each is loaded in this process, as the command does; a failure
is worded by the command's own ``smarttrees.cli.failures.explain``. It must not be an internal
error, must be one line naming the file, and must leave the database as it was.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl import encodings
from etl.mappings import load_mapping
from etl.trees import load_trees
from smarttrees.cli import failures
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.survey_writer import make_survey, write_survey

EXAMPLES = 40
ALIASES = sorted({a for spec in load_mapping(None).fields.values() for a in spec.columns})
REQUIRED = ["Mã cây", "Tên cây", "Kinh độ", "Vĩ độ"]
CELLS = ["", " ", "Sấu", "Bàng", "Xà cừ", "Cây lạ", "Tốt", "Kém", "Cây đô thị", "8,6", "8.6",
         "-1", "1e309", "nan", "inf", "105,8", "21,55", "105.81", "21.56", "2020-02-30",
         "15/03/2019", "1799-01-01", "3000-01-01", "TN-1", "TN-1", '"', "a\nb", "\x00", "\ufeff",
         "x" * 300, "١٢٣", "😀", "NULL", "=1+1"]


def header() -> st.SearchStrategy[str]:
    alias = st.sampled_from(ALIASES)
    typed = st.one_of(alias, alias.map(str.upper), alias.map(str.lower),
                      alias.map(lambda a: f"{a} (mm)"), alias.map(lambda a: a.replace(" ", "")))
    return st.one_of(typed, st.text(max_size=12))


# Cells a surveyor would write; the noise below replaces one in ten.
GOOD = {"Mã cây": st.integers(1, 9).map(lambda i: f"TN-{i}"),
        "Tên cây": st.sampled_from(["Sấu", "Bàng", "Xà cừ", "sau", "bang"]),
        "Kinh độ": st.sampled_from(["105.81", "105,82", "105.83", " 105.84 ", '"105,85"']),
        "Vĩ độ": st.sampled_from(["21.56", "21,57", "21.58", "21.59"])}
OPTIONAL = st.sampled_from(["", "", "12", "12,5", "Tốt", "2019-03-15"])


@st.composite
def survey(draw: st.DrawFn) -> tuple[bytes, str]:
    """A file's bytes and its suffix: mostly a survey with a few things wrong, sometimes junk."""
    headers = draw(st.lists(header(), max_size=3))
    if draw(st.integers(0, 3)):
        headers = REQUIRED + headers
    headers = draw(st.permutations(headers))
    noise = st.one_of(st.sampled_from(CELLS), st.text(max_size=10),
                      st.floats(allow_nan=True).map(str))

    def cell(name: str) -> st.SearchStrategy[str]:
        good = GOOD.get(name, OPTIONAL)
        return st.integers(0, 9).flatmap(lambda k: noise if k == 0 else good)

    rows = draw(st.lists(st.tuples(*[cell(h) for h in headers]).map(list), max_size=6))
    if rows and draw(st.integers(0, 5)) == 0:
        rows[-1] = rows[-1][:-1] if draw(st.booleans()) else [*rows[-1], "extra"]
    delimiter = draw(st.sampled_from([",", ",", ";", "\t", "|"]))

    def quoted(value: str) -> str:
        if any(c in value for c in (delimiter, '"', "\n", "\r")) and draw(st.booleans()):
            return '"' + value.replace('"', '""') + '"'
        return value

    text = "\n".join(delimiter.join(quoted(v) for v in row) for row in [headers, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "cp1258", "tcvn3",
                                     "vni", "utf-16", "latin-1"]))
    encodings.register()
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=200))
    suffix = draw(st.sampled_from([".csv"] * 6 + [".txt", ".xlsx", ".geojson"]))
    return data, suffix


STATE = """
SELECT (SELECT count(*) FROM smarttrees.trees),
       (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM smarttrees.trees t),
       (SELECT count(*) FROM smarttrees.tree_history),
       (SELECT count(*) FROM smarttrees.load_runs)
"""


def state(conn: psycopg.Connection) -> tuple[object, ...]:
    row = conn.execute(STATE).fetchone()
    assert row is not None
    return tuple(row)


def test_random_files_give_counts_or_one_line(db_url: str, conn: psycopg.Connection) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    load_trees(db_url, [write_survey(make_survey(20, prefix="OLD"), folder / "old.csv")])
    outcomes = {"loaded": 0, "refused": 0}

    @given(survey())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def load(case: tuple[bytes, str]) -> None:
        data, suffix = case
        path = folder / f"survey{suffix}"
        path.write_bytes(data)
        before = state(conn)
        try:
            result = load_trees(db_url, [path])
        except Exception as exc:  # noqa: BLE001 - what the command would word
            failure = failures.explain(exc)
            assert failure.code != failures.INTERNAL, (data, repr(exc))
            assert "\n" not in failure.message.strip(), failure.message
            assert path.name in failure.message, failure.message
            assert state(conn) == before, failure.message
            outcomes["refused"] += 1
            return
        f = result.files[0]
        assert f.rows == f.inserted + f.updated + f.unchanged + f.refused
        after = state(conn)
        assert after[0] == before[0] + f.inserted
        outcomes["loaded"] += 1

    load()
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes


def test_the_command_itself_prints_no_traceback(settings_env: str, tmp_path: Path) -> None:
    env = cli_env(SMARTTREES_DATABASE_URL=settings_env)
    bad = [b"\xff\xfe\x00\x00garbage", b"M\xc3\xa3 c\xc3\xa2y;T\xc3\xaan c\xc3\xa2y\n1;2;3;4\n",
           "Mã cây,Loai cay,Kinh độ,Vĩ độ\nA,Sấu,105.8,21.5\n".encode()]
    for i, data in enumerate(bad):
        path = tmp_path / f"bad{i}.csv"
        path.write_bytes(data)
        outcome = run_cli("load", "trees", str(path), env=env)
        assert outcome.code == failures.REFUSED, outcome.stderr
        assert "Traceback" not in outcome.stderr
        assert len(outcome.error_lines) == 1 and path.name in outcome.error_lines[0], outcome.stderr
