"""`smarttrees load agencies|documents|citizen-support`: the ETL's rules on the IOC's sources."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import psycopg

from etl import ioc_load
from smarttrees.database import connect

SMARTTREES = [sys.executable, "-m", "smarttrees"]

AGENCY_HEADERS = ["Mã cơ quan", "Tên cơ quan", "Cấp", "Mã xã", "Địa chỉ", "Kinh độ", "Vĩ độ"]
AGENCIES = [
    ["UBND-TINH", "Ủy ban nhân dân tỉnh", "Tỉnh", "", "Số 18 Nha Trang", "105.85", "21.59"],
    ["SNNMT", "Sở Nông nghiệp và Môi trường", "sở", "", "", "105.84", "21.58"],
    ["UBND-00001", "UBND xã An Khánh", "Xã", "00001", "", "105,75", "21,5"],
    ["UBND-00002", "UBND xã Bình Sơn", "xa", "00002", "", "", ""],
]
DOCUMENT_HEADERS = ["Số ký hiệu", "Ngày văn bản", "Cơ quan gửi", "Cơ quan nhận", "Loại văn bản",
                    "Hình thức gửi"]
DOCUMENTS = [
    ["1/UBND-00001", "06/01/2025", "UBND-00001", "UBND-TINH", "Công văn", "Điện tử"],
    ["2/UBND-00001", "2025-01-15", "UBND-00001", "SNNMT", "Báo cáo", "dien tu"],
    ["1/UBND-00002", "2025-01-20", "UBND-00002", "UBND-TINH", "Công văn", "Bưu chính"],
    ["1/UBND-TINH", "2025-01-21", "UBND-TINH", "UBND-00001; UBND-00002", "Quyết định",
     "Điện tử"],
]
SUPPORT_HEADERS = ["Mã hồ sơ", "Họ và tên", "Số CCCD", "Số điện thoại", "Số tài khoản",
                   "Mã xã thường trú", "Tỉnh nơi mắc kẹt", "Số tiền (đồng)", "Ngày chi trả",
                   "Trạng thái", "Kênh đăng ký"]


def _case(i: int, **changes: str) -> list[str]:
    row = {"case": f"HT-{i:03d}", "name": f"Lê Văn Bảo Mật {i}", "id": f"99920000{i:04d}",
           "phone": f"0999 {i:06d}", "account": f"99977766{i:04d}",
           "commune": "00001" if i % 2 else "00002", "province": "Bình Dương" if i % 3 else "79",
           "amount": "2.000.000", "paid": f"{i:02d}/08/2025", "status": "Đã chi trả",
           "channel": "C-ThaiNguyen" if i % 2 else "web"}
    row.update(changes)
    return list(row.values())


def write_csv(path: Path, headers: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([headers, *rows])
    return path


def write_xlsx(path: Path, headers: list[str], rows: list[list[str]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [headers, *rows]:
        sheet.append(row)
    book.save(path)
    return path


def seed_communes(url: str) -> None:
    with connect(url) as conn:
        conn.execute(
            "INSERT INTO admin_units (level, code, name, valid_from, geom) VALUES "
            "('commune', '00001', 'An Khánh', '2025-07-01', "
            "ST_Multi(ST_MakeEnvelope(105.7, 21.4, 105.8, 21.6, 4326))), "
            "('commune', '00002', 'Bình Sơn', '2025-07-01', "
            "ST_Multi(ST_MakeEnvelope(105.8, 21.4, 105.9, 21.6, 4326)))")


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run([*SMARTTREES, "load", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_agencies_load_then_reload_unchanged(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    path = write_csv(tmp_path / "co_quan.csv", AGENCY_HEADERS, AGENCIES)
    first = cli(db_url, "agencies", str(path))
    assert first.returncode == 0, first.stderr
    assert "4 agencies: inserted 4, updated 0, unchanged 0, refused 0" in first.stdout
    again = cli(db_url, "agencies", str(path))
    assert "inserted 0, updated 0, unchanged 4, refused 0" in again.stdout
    with connect(db_url) as conn:
        rows = conn.execute("SELECT code, level, commune_code, ST_X(geom), ST_Y(geom) "
                            "FROM agencies ORDER BY code").fetchall()
    assert rows == [("SNNMT", "department", None, 105.84, 21.58),
                    ("UBND-00001", "commune", "00001", 105.75, 21.5),
                    ("UBND-00002", "commune", "00002", None, None),
                    ("UBND-TINH", "province", None, 105.85, 21.59)]


def test_bad_agencies_are_refused_with_reasons(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    rows = [*AGENCIES,
            ["UBND-99999", "UBND xã Ma", "xã", "99999", "", "", ""],
            ["UBND-TINH", "Trùng mã", "tỉnh", "", "", "", ""],
            ["SCT", "Sở Công Thương", "bộ", "", "", "110.0", "21.5"]]
    result = ioc_load.load("agencies", db_url, write_csv(tmp_path / "a.csv", AGENCY_HEADERS, rows))
    assert (result.inserted, result.refused) == (4, 3)
    assert result.rejects_path is not None
    with result.rejects_path.open(encoding="utf-8-sig") as handle:
        reasons = {r["row"]: r["reason"] for r in csv.DictReader(handle)}
    assert reasons == {
        "6": "Mã xã: 99999 is not a commune in force",
        "7": "Mã cơ quan: UBND-TINH already appears in row 2",
        "8": "Cấp: 'bộ' is not one of tỉnh (province), sở (department), xã/phường (commune); "
             "position: outside the territory",
    }


def test_documents_load_refreshes_the_layers_and_is_keyed(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    ioc_load.load("agencies", db_url, write_csv(tmp_path / "a.csv", AGENCY_HEADERS, AGENCIES))
    path = write_csv(tmp_path / "so_van_ban.csv", DOCUMENT_HEADERS, DOCUMENTS)
    result = ioc_load.load("documents", db_url, path)
    assert (result.rows, result.inserted, result.refused) == (4, 4, 0)
    with connect(db_url) as conn:
        months = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, sent, received, courier_saving_vnd FROM ioc_documents_commune_month")}
        also = conn.execute("SELECT a.code FROM documents d JOIN agencies a "
                            "ON a.id = ANY (d.also_to)").fetchall()
    assert months == {"00001:2025-01": (2, 1, 8_000), "00002:2025-01": (1, 1, 0)}
    assert also == [("UBND-00002",)]
    changed = [*DOCUMENTS[:3], [*DOCUMENTS[3][:5], "Bưu chính"]]
    again = ioc_load.load("documents", db_url,
                          write_csv(tmp_path / "so_van_ban_2.csv", DOCUMENT_HEADERS, changed))
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 3)
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (4,)


def test_bad_documents_are_refused_and_strict_writes_nothing(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    ioc_load.load("agencies", db_url, write_csv(tmp_path / "a.csv", AGENCY_HEADERS, AGENCIES))
    rows = [*DOCUMENTS,
            ["5/X", "2025-02-30", "UBND-9", "UBND-TINH; SO-LA", "Công văn", "fax"],
            ["1/UBND-00001", "2024-12-31", "UBND-00001", "UBND-00001", "Công văn", "Điện tử"]]
    path = write_csv(tmp_path / "bad.csv", DOCUMENT_HEADERS, rows)
    strict = cli(db_url, "documents", str(path), "--strict", "--from", "2025-01-01",
                 "--to", "2025-09-30")
    assert strict.returncode == 1
    assert "refused 2" in strict.stdout and "nothing written" in strict.stderr
    assert "Traceback" not in strict.stderr
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (0,)
    reasons = {r["row"]: r["reason"] for r in csv.DictReader(
        (tmp_path / "bad.rejects.csv").open(encoding="utf-8-sig"))}
    assert reasons == {
        "6": "Ngày văn bản: not a date (YYYY-MM-DD or DD/MM/YYYY); Cơ quan gửi: UBND-9 is not a "
             "known agency (load agencies first); Cơ quan nhận: SO-LA is not a known agency "
             "(load agencies first); Hình thức gửi: 'fax' is not điện tử (electronic) or bưu "
             "chính (postal)",
        "7": "Số ký hiệu: 1/UBND-00001 of UBND-00001 already appears in row 2; Ngày văn bản: "
             "outside the period 2025-01-01 – 2025-09-30; Cơ quan nhận: the sender cannot "
             "receive its own document",
    }


def test_citizen_support_reasons_never_echo_personal_values(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    good = [_case(i) for i in range(1, 7)]
    bad = [_case(7, id="12345"), _case(8, amount="-500.000"), _case(9, case="HT-001"),
           _case(10, commune="77777", province="Hà Nội"), _case(11, phone="12", account="x"),
           _case(12, paid="31/02/2025", status="chờ", channel="fax")]
    path = write_xlsx(tmp_path / "ho_tro.xlsx", SUPPORT_HEADERS, good + bad)
    run = cli(db_url, "citizen-support", str(path))
    assert run.returncode == 0, run.stderr
    assert "12 citizen-support: inserted 6, updated 0, unchanged 0, refused 6" in run.stdout
    rejects = (tmp_path / "ho_tro.rejects.csv").read_text(encoding="utf-8-sig")
    reasons = {r["row"]: r["reason"] for r in csv.DictReader(rejects.splitlines())}
    assert reasons == {
        "8": "Số CCCD: not a 12-digit citizen ID number",
        "9": "Số tiền (đồng): not a positive whole number of VND",
        "10": "Mã hồ sơ: the same case number as row 2",
        "11": "Mã xã thường trú: not a commune in force; Tỉnh nơi mắc kẹt: not one of the "
              "southern provinces (code or name)",
        "12": "Số điện thoại: not a 10-digit phone number; Số tài khoản: not a bank account "
              "number (6 to 20 digits)",
        "13": "Ngày chi trả: not a date (YYYY-MM-DD or DD/MM/YYYY); Trạng thái: not one of đã "
              "tiếp nhận, đã xác minh, đã chi trả, từ chối; Kênh đăng ký: not web or app "
              "(C-ThaiNguyen)",
    }
    personal = [v for row in good + bad for v in row[1:5] if len(v) >= 5]  # not "12", "x"
    for value in personal:
        assert value not in rejects + run.stdout + run.stderr
    with connect(db_url) as conn:
        stored = conn.execute(
            "SELECT case_no, phone, stranded_province, amount_vnd, paid_on::text, status, "
            "channel FROM restricted.citizen_support_cases ORDER BY case_no LIMIT 2").fetchall()
    assert stored == [("HT-001", "0999000001", "74", 2_000_000, "2025-08-01", "paid", "app"),
                      ("HT-002", "0999000002", "74", 2_000_000, "2025-08-02", "paid", "web")]
    again = cli(db_url, "citizen-support", str(path))
    assert "inserted 0, updated 0, unchanged 6, refused 6" in again.stdout


def test_a_file_without_a_required_column_is_refused_whole(db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", ["Mã hồ sơ", "Họ và tên"], [["HT-1", "Ai Đó"]])
    run = cli(db_url, "citizen-support", str(path))
    assert run.returncode == 1
    assert "x.csv, row 1: no column for national_id" in run.stderr
    assert "Ai Đó" not in run.stderr and "Traceback" not in run.stderr


def test_a_broken_csv_names_its_line_and_stores_nothing(db_url: str, tmp_path: Path) -> None:
    seed_communes(db_url)
    path = tmp_path / "a.csv"
    path.write_text(",".join(AGENCY_HEADERS) + "\nA,B,tỉnh,,,,\nC,D,tỉnh,,,,,,extra\n",
                    encoding="utf-8")
    run = cli(db_url, "agencies", str(path))
    assert run.returncode == 1 and "a.csv" in run.stderr and "Traceback" not in run.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM smarttrees.agencies").fetchone() == (0,)
