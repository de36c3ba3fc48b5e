"""The SQL of the IOC loaders (:mod:`etl.ioc_load`): row checks and the keyed writes.

Each check statement reads the staged text table ``{raw}`` (cells named by field, e.g.
``{code}``: ``nullif(btrim(r.cN), '')`` or NULL when the file lacks the column) and creates the
temporary table ``ioc_checked``: one row per input row, typed, with ``problems``, the reasons it
is refused (empty when it is good). ``%(label_x)s`` is the file's header of field x. Values from
the citizen-support register are never put into a reason.
"""

from __future__ import annotations

# "2025-03-07" or "07/03/2025"; NULL when not a date of the calendar.
DATE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION pg_temp.ioc_date(v text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p text[];
BEGIN
    IF v ~ '^\d{4}-\d{1,2}-\d{1,2}$' THEN
        p := string_to_array(v, '-');
    ELSIF v ~ '^\d{1,2}/\d{1,2}/\d{4}$' THEN
        p := string_to_array(v, '/');
        p := ARRAY[p[3], p[2], p[1]];
    ELSE
        RETURN NULL;
    END IF;
    IF p[1]::int < 1 OR p[2]::int NOT BETWEEN 1 AND 12 OR p[3]::int < 1
       OR p[3]::int > extract(day FROM make_date(p[1]::int, p[2]::int, 1)
                                        + interval '1 month - 1 day') THEN
        RETURN NULL;
    END IF;
    RETURN make_date(p[1]::int, p[2]::int, p[3]::int);
END $$
"""

_DATE_PROBLEMS = """
    CASE WHEN {raw_value} IS NULL THEN %(label_{field})s || ': missing'
         WHEN {value} IS NULL THEN %(label_{field})s || ': not a date (YYYY-MM-DD or DD/MM/YYYY)'
         WHEN {value} NOT BETWEEN %(first)s AND %(last)s THEN %(label_{field})s
              || ': outside the period ' || %(first)s::text || ' – ' || %(last)s::text END"""


def _date_problems(field: str, raw_value: str, value: str) -> str:
    # Doubled braces: the result is itself a template for psycopg.sql's format().
    return _DATE_PROBLEMS.format(field=field, raw_value=raw_value, value=value).replace(
        "{", "{{").replace("}", "}}")


AGENCIES = """
CREATE TEMP TABLE ioc_checked ON COMMIT DROP AS
WITH v AS (
    SELECT r.row_no, {code} AS code, {name} AS name, {level} AS level_raw, {commune} AS commune,
           {address} AS address, replace({lon}, ',', '.') AS lon_raw,
           replace({lat}, ',', '.') AS lat_raw
    FROM {raw} r
), dups AS (
    SELECT code, min(row_no) AS first_row FROM v WHERE code IS NOT NULL
    GROUP BY code HAVING count(*) > 1
), t AS (
    SELECT v.*, l.value AS level, d.first_row,
           CASE WHEN v.lon_raw ~ '^-?\\d+(\\.\\d+)?$' THEN v.lon_raw::float8 END AS lon,
           CASE WHEN v.lat_raw ~ '^-?\\d+(\\.\\d+)?$' THEN v.lat_raw::float8 END AS lat,
           EXISTS (SELECT FROM smarttrees.communes c WHERE c.code = v.commune) AS commune_known
    FROM v
    LEFT JOIN ioc_vocabulary l ON l.vocabulary = 'level' AND l.term = lower(v.level_raw)
    LEFT JOIN dups d ON d.code = v.code
)
SELECT row_no, code, name, level, commune, address, lon, lat, array_remove(ARRAY[
    CASE WHEN code IS NULL THEN %(label_code)s || ': missing'
         WHEN first_row IS NOT NULL AND row_no <> first_row THEN
              %(label_code)s || ': ' || code || ' already appears in row ' || first_row END,
    CASE WHEN name IS NULL THEN %(label_name)s || ': missing' END,
    CASE WHEN level_raw IS NULL THEN %(label_level)s || ': missing'
         WHEN level IS NULL THEN %(label_level)s || ': ' || quote_literal(level_raw)
              || ' is not one of tỉnh (province), sở (department), xã/phường (commune)' END,
    CASE WHEN commune IS NOT NULL AND NOT commune_known THEN
              %(label_commune)s || ': ' || commune || ' is not a commune in force'
         WHEN level = 'commune' AND commune IS NULL THEN
              %(label_commune)s || ': missing (a commune agency needs its commune)' END,
    CASE WHEN (lon_raw IS NULL) <> (lat_raw IS NULL) THEN
              'position: give both longitude and latitude, or neither'
         WHEN lon_raw IS NOT NULL AND lon IS NULL THEN %(label_lon)s || ': not a number'
         WHEN lat_raw IS NOT NULL AND lat IS NULL THEN %(label_lat)s || ': not a number'
         WHEN lon IS NOT NULL AND NOT smarttrees.in_territory(lon, lat) THEN
              'position: outside the territory' END
], NULL) AS problems
FROM t
"""

# A register has 1.9 M rows but a few hundred distinct dates, receiver lists and channels:
# those are parsed once each (distinct values joined back), not once per row.
DOCUMENTS = """
CREATE TEMP TABLE ioc_checked ON COMMIT DROP AS
WITH v AS (
    SELECT r.row_no, {doc_no} AS doc_no, {sent_on} AS sent_raw, {sender} AS sender_code,
           {receivers} AS receivers_raw, {doc_type} AS doc_type, {channel} AS channel_raw
    FROM {raw} r
), clashes AS (
    -- Keys whose 32-bit hash repeats: a small superset of the repeated keys, found by hashing
    -- integers rather than 1.9 M pairs of strings; the repeated keys are then told exactly.
    SELECT hashtext(sender_code || ' ' || doc_no) AS h FROM v
    GROUP BY 1 HAVING count(*) > 1
), dups AS (
    SELECT sender_code, doc_no, min(row_no) AS first_row FROM v
    WHERE hashtext(sender_code || ' ' || doc_no) IN (SELECT h FROM clashes)
    GROUP BY sender_code, doc_no HAVING count(*) > 1
), days AS (
    SELECT raw, pg_temp.ioc_date(raw) AS day FROM (SELECT DISTINCT sent_raw AS raw FROM v) u
    WHERE raw IS NOT NULL
), lists AS (
    SELECT l.raw, l.codes,
           (SELECT a.id FROM smarttrees.agencies a WHERE a.code = l.codes[1]) AS receiver_id,
           CASE WHEN cardinality(l.codes) > 1 THEN (
               SELECT array_agg(a.id ORDER BY u.ord)
               FROM unnest(l.codes[2:]) WITH ORDINALITY AS u(code, ord)
               JOIN smarttrees.agencies a ON a.code = u.code) END AS also_to,
           (SELECT string_agg(u, ', ') FROM unnest(l.codes) AS u
            WHERE NOT EXISTS (SELECT FROM smarttrees.agencies a WHERE a.code = u)) AS unknown
    FROM (SELECT raw, regexp_split_to_array(raw, '\\s*[;,]\\s*') AS codes
          FROM (SELECT DISTINCT receivers_raw AS raw FROM v) u WHERE raw IS NOT NULL) l
), channels AS (
    SELECT u.raw, ch.value::boolean AS electronic
    FROM (SELECT DISTINCT channel_raw AS raw FROM v) u
    JOIN ioc_vocabulary ch ON ch.vocabulary = 'doc_channel' AND ch.term = lower(u.raw)
), t AS (
    SELECT v.*, dy.day AS sent_on, s.id AS agency_id, s.commune_code, l.receiver_id,
           l.also_to, l.unknown, ch.electronic, d.first_row
    FROM v
    LEFT JOIN days dy ON dy.raw = v.sent_raw
    LEFT JOIN smarttrees.agencies s ON s.code = v.sender_code
    LEFT JOIN lists l ON l.raw = v.receivers_raw
    LEFT JOIN channels ch ON ch.raw = v.channel_raw
    LEFT JOIN dups d ON d.sender_code = v.sender_code AND d.doc_no = v.doc_no
)
SELECT row_no, doc_no, sent_on, agency_id, commune_code, receiver_id, also_to, doc_type,
       electronic, array_remove(ARRAY[
    CASE WHEN doc_no IS NULL THEN %(label_doc_no)s || ': missing'
         WHEN first_row IS NOT NULL AND row_no <> first_row THEN %(label_doc_no)s || ': '
              || doc_no || ' of ' || sender_code || ' already appears in row ' || first_row END,
""" + _date_problems("sent_on", "sent_raw", "sent_on") + """,
    CASE WHEN sender_code IS NULL THEN %(label_sender)s || ': missing'
         WHEN agency_id IS NULL THEN %(label_sender)s || ': ' || sender_code
              || ' is not a known agency (load agencies first)' END,
    CASE WHEN receivers_raw IS NULL THEN %(label_receivers)s || ': missing'
         WHEN unknown IS NOT NULL THEN %(label_receivers)s || ': ' || unknown
              || ' is not a known agency (load agencies first)'
         WHEN receiver_id = agency_id OR agency_id = ANY (also_to) THEN
              %(label_receivers)s || ': the sender cannot receive its own document' END,
    CASE WHEN channel_raw IS NULL THEN %(label_channel)s || ': missing'
         WHEN electronic IS NULL THEN %(label_channel)s || ': ' || quote_literal(channel_raw)
              || ' is not điện tử (electronic) or bưu chính (postal)' END
], NULL) AS problems
FROM t
"""

CITIZEN_SUPPORT = """
CREATE TEMP TABLE ioc_checked ON COMMIT DROP AS
WITH v AS (
    SELECT r.row_no, {case_no} AS case_no, {full_name} AS full_name,
           regexp_replace({national_id}, '\\s', '', 'g') AS national_id,
           regexp_replace(regexp_replace({phone}, '[\\s.()-]', '', 'g'), '^\\+84', '0')
               AS phone,
           regexp_replace({bank_account}, '[\\s.-]', '', 'g') AS bank_account,
           {commune} AS commune, {province} AS province_raw, {amount} AS amount_raw,
           {paid_on} AS paid_raw, {status} AS status_raw, {channel} AS channel_raw,
           {support_type} AS support_type
    FROM {raw} r
), dups AS (
    SELECT case_no, min(row_no) AS first_row FROM v WHERE case_no IS NOT NULL
    GROUP BY case_no HAVING count(*) > 1
), t AS (
    SELECT v.*, p.value AS province, st.value AS status, ch.value AS channel, d.first_row,
           CASE WHEN v.amount_raw ~ '^\\d{{1,3}}([., ]?\\d{{3}})*$'
                THEN regexp_replace(v.amount_raw, '[., ]', '', 'g')::numeric END AS amount,
           pg_temp.ioc_date(v.paid_raw) AS paid_on,
           EXISTS (SELECT FROM smarttrees.communes c WHERE c.code = v.commune) AS commune_known
    FROM v
    LEFT JOIN ioc_vocabulary p ON p.vocabulary = 'province' AND p.term = lower(v.province_raw)
    LEFT JOIN ioc_vocabulary st ON st.vocabulary = 'status' AND st.term = lower(v.status_raw)
    LEFT JOIN ioc_vocabulary ch
        ON ch.vocabulary = 'support_channel' AND ch.term = lower(v.channel_raw)
    LEFT JOIN dups d ON d.case_no = v.case_no
)
SELECT row_no, case_no, full_name, national_id, phone, bank_account, commune, province,
       amount::bigint AS amount, paid_on, coalesce(status, 'paid') AS status, channel,
       support_type, array_remove(ARRAY[
    CASE WHEN case_no IS NULL THEN %(label_case_no)s || ': missing'
         WHEN first_row IS NOT NULL AND row_no <> first_row THEN
              %(label_case_no)s || ': the same case number as row ' || first_row END,
    CASE WHEN full_name IS NULL THEN %(label_full_name)s || ': missing' END,
    CASE WHEN national_id IS NULL THEN %(label_national_id)s || ': missing'
         WHEN national_id !~ '^\\d{{12}}$' THEN
              %(label_national_id)s || ': not a 12-digit citizen ID number' END,
    CASE WHEN phone IS NOT NULL AND phone !~ '^0\\d{{9}}$' THEN
              %(label_phone)s || ': not a 10-digit phone number' END,
    CASE WHEN bank_account IS NOT NULL AND bank_account !~ '^\\d{{6,20}}$' THEN
              %(label_bank_account)s || ': not a bank account number (6 to 20 digits)' END,
    CASE WHEN commune IS NULL THEN %(label_commune)s || ': missing'
         WHEN NOT commune_known THEN %(label_commune)s || ': not a commune in force' END,
    CASE WHEN province_raw IS NULL THEN %(label_province)s || ': missing'
         WHEN province IS NULL THEN %(label_province)s
              || ': not one of the southern provinces (code or name)' END,
    CASE WHEN amount_raw IS NULL THEN %(label_amount)s || ': missing'
         WHEN amount IS NULL OR amount <= 0 OR amount > 1e12 THEN
              %(label_amount)s || ': not a positive whole number of VND' END,
""" + _date_problems("paid_on", "paid_raw", "paid_on") + """,
    CASE WHEN status_raw IS NOT NULL AND status IS NULL THEN %(label_status)s
              || ': not one of đã tiếp nhận, đã xác minh, đã chi trả, từ chối' END,
    CASE WHEN channel_raw IS NOT NULL AND channel IS NULL THEN
              %(label_channel)s || ': not web or app (C-ThaiNguyen)' END
], NULL) AS problems
FROM t
"""

# Planting targets per commune: a commune in force, a whole number of trees, once per commune.
TARGETS = """
CREATE TEMP TABLE ioc_checked ON COMMIT DROP AS
WITH v AS (
    SELECT r.row_no, {commune} AS commune, regexp_replace({target}, '[., ]', '', 'g')
               AS target_raw, {target} AS target_cell
    FROM {raw} r
), dups AS (
    SELECT commune, min(row_no) AS first_row FROM v WHERE commune IS NOT NULL
    GROUP BY commune HAVING count(*) > 1
), t AS (
    SELECT v.*, d.first_row,
           CASE WHEN v.target_cell ~ '^\\d{{1,3}}([., ]?\\d{{3}})*$'
                     AND length(v.target_raw) <= 9
                THEN v.target_raw::integer END AS target,
           EXISTS (SELECT FROM smarttrees.communes c WHERE c.code = v.commune) AS commune_known
    FROM v LEFT JOIN dups d ON d.commune = v.commune
)
SELECT row_no, commune, target, array_remove(ARRAY[
    CASE WHEN commune IS NULL THEN %(label_commune)s || ': missing'
         WHEN NOT commune_known THEN %(label_commune)s || ': ' || commune
              || ' is not a commune in force'
         WHEN first_row IS NOT NULL AND row_no <> first_row THEN
              %(label_commune)s || ': ' || commune || ' already appears in row ' || first_row END,
    CASE WHEN target_cell IS NULL THEN %(label_target)s || ': missing'
         WHEN target IS NULL THEN %(label_target)s || ': ' || quote_literal(target_cell)
              || ' is not a whole number of trees (0 to 999,999,999)' END
], NULL) AS problems
FROM t
"""

CHECKS = {"agencies": AGENCIES, "documents": DOCUMENTS, "citizen-support": CITIZEN_SUPPORT,
          "targets": TARGETS}

_COUNTED = "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"

UPSERTS = {
    "targets": """
WITH up AS (
    INSERT INTO smarttrees.planting_targets AS p (commune_code, target, source)
    SELECT commune, target, %(source)s FROM ioc_checked WHERE cardinality(problems) = 0
    ON CONFLICT (commune_code) DO UPDATE SET target = excluded.target, source = excluded.source,
        updated_at = now()
    WHERE p.target IS DISTINCT FROM excluded.target
    RETURNING xmax = 0 AS inserted
) """ + _COUNTED,
    "agencies": """
WITH up AS (
    INSERT INTO smarttrees.agencies AS a (code, name, level, commune_code, address, geom)
    SELECT code, name, level, commune, address,
           CASE WHEN lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END
    FROM ioc_checked WHERE cardinality(problems) = 0
    ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level,
        commune_code = excluded.commune_code, address = excluded.address, geom = excluded.geom
    WHERE (a.name, a.level, a.commune_code, a.address, a.geom)
          IS DISTINCT FROM (excluded.name, excluded.level, excluded.commune_code,
                            excluded.address, excluded.geom)
    RETURNING xmax = 0 AS inserted
) """ + _COUNTED,
    "citizen-support": """
WITH up AS (
    INSERT INTO restricted.citizen_support_cases AS s (case_no, full_name, national_id, phone,
        bank_account, commune_code, stranded_province, amount_vnd, paid_on, status, channel,
        support_type, source)
    SELECT case_no, full_name, national_id, phone, bank_account, commune, province, amount,
           paid_on, status, channel, coalesce(support_type, 'hỗ trợ công dân mắc kẹt'),
           %(source)s
    FROM ioc_checked WHERE cardinality(problems) = 0
    ON CONFLICT (case_no) DO UPDATE SET full_name = excluded.full_name,
        national_id = excluded.national_id, phone = excluded.phone,
        bank_account = excluded.bank_account, commune_code = excluded.commune_code,
        stranded_province = excluded.stranded_province, amount_vnd = excluded.amount_vnd,
        paid_on = excluded.paid_on, status = excluded.status, channel = excluded.channel,
        support_type = excluded.support_type, source = excluded.source
    WHERE (s.full_name, s.national_id, s.phone, s.bank_account, s.commune_code,
           s.stranded_province, s.amount_vnd, s.paid_on, s.status, s.channel, s.support_type)
          IS DISTINCT FROM (excluded.full_name, excluded.national_id, excluded.phone,
                            excluded.bank_account, excluded.commune_code,
                            excluded.stranded_province, excluded.amount_vnd, excluded.paid_on,
                            excluded.status, excluded.channel, excluded.support_type)
    RETURNING xmax = 0 AS inserted
) """ + _COUNTED,
}

# The document register is written set-based (1.9 M rows): one MERGE matches the checked rows
# to the stored ones by key, updates the changed ones and inserts the new ones.
DOCUMENTS_MERGE = """
MERGE INTO smarttrees.documents d
USING (
    SELECT agency_id, doc_no, receiver_id, also_to, coalesce(doc_type, 'văn bản') AS doc_type,
           electronic, sent_on, commune_code,
           CASE WHEN electronic THEN %(rate)s ELSE 0 END AS courier_saving_vnd
    FROM ioc_checked WHERE cardinality(problems) = 0
) c ON d.agency_id = c.agency_id AND d.doc_no = c.doc_no
WHEN MATCHED AND (d.receiver_id, d.also_to, d.doc_type, d.electronic, d.sent_on,
                  d.commune_code, d.courier_saving_vnd)
        IS DISTINCT FROM (c.receiver_id, c.also_to, c.doc_type, c.electronic, c.sent_on,
                          c.commune_code, c.courier_saving_vnd) THEN
    UPDATE SET receiver_id = c.receiver_id, also_to = c.also_to, doc_type = c.doc_type,
               electronic = c.electronic, sent_on = c.sent_on, commune_code = c.commune_code,
               courier_saving_vnd = c.courier_saving_vnd
WHEN NOT MATCHED THEN
    INSERT (agency_id, doc_no, receiver_id, also_to, doc_type, electronic, sent_on, commune_code,
            courier_saving_vnd)
    VALUES (c.agency_id, c.doc_no, c.receiver_id, c.also_to, c.doc_type, c.electronic,
            c.sent_on, c.commune_code, c.courier_saving_vnd)
"""
# Rows this transaction has inserted into and updated in the register so far.
DOCUMENTS_WRITTEN = """
SELECT pg_stat_get_xact_tuples_inserted('smarttrees.documents'::regclass),
       pg_stat_get_xact_tuples_updated('smarttrees.documents'::regclass)
"""
DOCUMENTS_INSERT = """
INSERT INTO smarttrees.documents (agency_id, doc_no, receiver_id, also_to, doc_type, electronic,
                                  sent_on, commune_code, courier_saving_vnd)
SELECT agency_id, doc_no, receiver_id, also_to, doc_type, electronic, sent_on, commune_code,
       courier_saving_vnd
FROM {source} WHERE {where}
"""
# A first load into an empty register needs no matching: the rows go straight in.
DOCUMENTS_FIRST = """
SELECT agency_id, doc_no, receiver_id, also_to, coalesce(doc_type, 'văn bản') AS doc_type,
       electronic, sent_on, commune_code,
       CASE WHEN electronic THEN %(rate)s ELSE 0 END AS courier_saving_vnd
FROM ioc_checked WHERE cardinality(problems) = 0
"""
