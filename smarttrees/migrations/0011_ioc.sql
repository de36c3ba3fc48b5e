-- depends: 0001_core
-- The IOC: what the source systems export (document numbers, senders and receivers; the
-- citizen-support register with contact and bank details, the province where a person was
-- stranded, status and channel), and the layers the IOC reads, per agency, commune, month and
-- province. Document and tree layers are materialised views (1.9 M documents, 1.13 M trees),
-- refreshed CONCURRENTLY after each load (smarttrees.ioc.refresh); citizen-support layers are plain
-- views over the small restricted register, so they can never lag behind it.

-- Settings the layers apply (courier cost per document, privacy threshold), written from
-- SMARTTREES_* settings at each IOC load or `smarttrees ioc refresh`; defaults when absent.
CREATE TABLE smarttrees.ioc_parameters (
    name  text PRIMARY KEY,
    value bigint NOT NULL CHECK (value >= 0)
);

CREATE FUNCTION smarttrees.ioc_parameter(parameter text, fallback bigint)
RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((SELECT value FROM smarttrees.ioc_parameters WHERE name = parameter), fallback)
$$;

ALTER TABLE smarttrees.agencies ADD COLUMN address text;

-- A document has one sender (agency_id) and one or more receivers: the first in receiver_id,
-- any others in also_to. doc_no is the document-management system's number, unique per sender.
-- direction is what the generator recorded before receivers existed; loads leave it empty.
ALTER TABLE smarttrees.documents
    ADD COLUMN doc_no text,
    ADD COLUMN receiver_id integer,
    ADD COLUMN also_to integer[],
    ALTER COLUMN direction DROP NOT NULL;
CREATE UNIQUE INDEX documents_source_key_idx ON smarttrees.documents (agency_id, doc_no);

-- The 22 southern provinces where people of the province were stranded (reference data,
-- loaded by etl.ioc_reference from data/ioc/southern_provinces.csv).
CREATE TABLE smarttrees.support_provinces (
    code text PRIMARY KEY,
    name text NOT NULL,
    geom geometry(Point, 4326) NOT NULL
);

ALTER TABLE restricted.citizen_support_cases
    ADD COLUMN phone text,
    ADD COLUMN bank_account text,
    ADD COLUMN stranded_province text,
    ADD COLUMN status text NOT NULL DEFAULT 'paid'
        CHECK (status IN ('received', 'verified', 'paid', 'rejected')),
    ADD COLUMN channel text CHECK (channel IN ('web', 'app')),
    ADD COLUMN source text;

-- Documents per agency and month: sent (as sender), received (as a receiver), electronic.
CREATE MATERIALIZED VIEW smarttrees.ioc_documents_agency_month AS
    WITH sent AS (
        SELECT agency_id, date_trunc('month', sent_on)::date AS month,
               count(*) AS sent, count(*) FILTER (WHERE electronic) AS sent_electronic,
               min(sent_on) AS first_on, max(sent_on) AS last_on
        FROM smarttrees.documents GROUP BY 1, 2
    ), receipts AS (
        SELECT receiver_id AS agency_id, sent_on, electronic
        FROM smarttrees.documents WHERE receiver_id IS NOT NULL
        UNION ALL
        SELECT r.agency_id, d.sent_on, d.electronic
        FROM smarttrees.documents d, unnest(d.also_to) AS r(agency_id)
        WHERE d.also_to IS NOT NULL
    ), received AS (
        SELECT agency_id, date_trunc('month', sent_on)::date AS month, count(*) AS received,
               count(*) FILTER (WHERE electronic) AS received_electronic
        FROM receipts GROUP BY 1, 2
    )
    SELECT a.code || ':' || to_char(m.month, 'YYYY-MM') AS id,
           a.code AS agency_code, a.name AS agency_name, a.level, a.commune_code, m.month,
           coalesce(s.sent, 0) AS sent, coalesce(s.sent_electronic, 0) AS sent_electronic,
           coalesce(r.received, 0) AS received,
           coalesce(r.received_electronic, 0) AS received_electronic,
           round(s.sent_electronic::numeric / nullif(s.sent, 0), 4) AS electronic_share,
           coalesce(s.sent_electronic, 0) * smarttrees.ioc_parameter('courier_cost_vnd', 4000)
               AS courier_saving_vnd,
           s.first_on, s.last_on, a.geom
    FROM (SELECT agency_id, month FROM sent UNION SELECT agency_id, month FROM received) m
    JOIN smarttrees.agencies a ON a.id = m.agency_id
    LEFT JOIN sent s USING (agency_id, month)
    LEFT JOIN received r USING (agency_id, month);
CREATE UNIQUE INDEX ioc_documents_agency_month_id ON smarttrees.ioc_documents_agency_month (id);

-- Documents per commune and month: the commune's agencies' figures added up (a document sent
-- by a commune committee counts in its commune; the province's agencies belong to none).
CREATE MATERIALIZED VIEW smarttrees.ioc_documents_commune_month AS
    SELECT c.code || ':' || to_char(m.month, 'YYYY-MM') AS id,
           c.code AS commune_code, c.name AS commune_name, m.month,
           sum(m.sent)::bigint AS sent, sum(m.sent_electronic)::bigint AS sent_electronic,
           sum(m.received)::bigint AS received,
           sum(m.received_electronic)::bigint AS received_electronic,
           round(sum(m.sent_electronic) / nullif(sum(m.sent), 0), 4) AS electronic_share,
           sum(m.courier_saving_vnd)::bigint AS courier_saving_vnd,
           c.geom
    FROM smarttrees.ioc_documents_agency_month m
    JOIN smarttrees.communes c ON c.code = m.commune_code
    GROUP BY c.code, c.name, m.month, c.geom;
CREATE UNIQUE INDEX ioc_documents_commune_month_id ON smarttrees.ioc_documents_commune_month (id);

-- Document flows: one line per sender, receiver and month, from the sender to the receiver.
CREATE MATERIALIZED VIEW smarttrees.ioc_document_flows AS
    WITH pairs AS (
        SELECT agency_id AS sender_id, receiver_id, sent_on, electronic
        FROM smarttrees.documents WHERE receiver_id IS NOT NULL
        UNION ALL
        SELECT d.agency_id, r.agency_id, d.sent_on, d.electronic
        FROM smarttrees.documents d, unnest(d.also_to) AS r(agency_id)
        WHERE d.also_to IS NOT NULL
    ), counted AS (
        SELECT sender_id, receiver_id, date_trunc('month', sent_on)::date AS month,
               count(*) AS documents, count(*) FILTER (WHERE electronic) AS electronic
        FROM pairs GROUP BY 1, 2, 3
    )
    SELECT s.code || '>' || r.code || ':' || to_char(f.month, 'YYYY-MM') AS id,
           s.code AS sender_code, s.name AS sender_name,
           r.code AS receiver_code, r.name AS receiver_name,
           f.month, f.documents, f.electronic,
           ST_MakeLine(s.geom, r.geom) AS geom
    FROM counted f
    JOIN smarttrees.agencies s ON s.id = f.sender_id
    JOIN smarttrees.agencies r ON r.id = f.receiver_id;
CREATE UNIQUE INDEX ioc_document_flows_id ON smarttrees.ioc_document_flows (id);

-- Trees per commune: by category and condition, per km², and the tree data version (newest
-- tree_history id) the view was computed at, so a reader can tell when it is behind.
CREATE MATERIALIZED VIEW smarttrees.ioc_trees_by_commune AS
    WITH counted AS (
        SELECT coalesce(commune_code, '') AS commune_code, count(*) AS trees,
               count(*) FILTER (WHERE category = 'urban') AS urban,
               count(*) FILTER (WHERE category = 'scattered') AS scattered,
               count(*) FILTER (WHERE category = 'plantation') AS plantation,
               count(*) FILTER (WHERE condition = 'good') AS good,
               count(*) FILTER (WHERE condition = 'fair') AS fair,
               count(*) FILTER (WHERE condition = 'poor') AS poor,
               count(*) FILTER (WHERE condition = 'dead') AS dead,
               count(*) FILTER (WHERE condition = 'removed') AS removed,
               count(*) FILTER (WHERE condition IS NULL) AS condition_unknown
        FROM smarttrees.trees GROUP BY 1
    ), areas AS (
        SELECT code, name, geom, ST_Area(geom::geography) / 1e6 AS area_km2
        FROM smarttrees.communes
    )
    SELECT coalesce(a.code, t.commune_code) AS commune_code, a.name AS commune_name,
           round(a.area_km2::numeric, 3) AS area_km2,
           coalesce(t.trees, 0) AS trees, coalesce(t.urban, 0) AS urban,
           coalesce(t.scattered, 0) AS scattered, coalesce(t.plantation, 0) AS plantation,
           coalesce(t.good, 0) AS good, coalesce(t.fair, 0) AS fair,
           coalesce(t.poor, 0) AS poor, coalesce(t.dead, 0) AS dead,
           coalesce(t.removed, 0) AS removed,
           coalesce(t.condition_unknown, 0) AS condition_unknown,
           round((coalesce(t.trees, 0) / nullif(a.area_km2, 0))::numeric, 1) AS trees_per_km2,
           (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history) AS version,
           a.geom
    FROM areas a FULL JOIN counted t ON t.commune_code = a.code;
CREATE UNIQUE INDEX ioc_trees_by_commune_code ON smarttrees.ioc_trees_by_commune (commune_code);

-- The count of trees at the end of each month of the inventory's latest year (the year of the
-- newest planting date): trees without a planting date, or planted before, count from the start.
CREATE MATERIALIZED VIEW smarttrees.ioc_tree_count_month AS
    WITH year AS (
        SELECT coalesce(date_trunc('year', max(planted_on)), date_trunc('year', now()))::date
            AS first
        FROM smarttrees.trees
    ), months AS (
        SELECT generate_series(first, first + interval '11 months', interval '1 month')::date
            AS month
        FROM year
    ), planted AS (
        SELECT coalesce(t.commune_code, '') AS commune_code,
               CASE WHEN t.planted_on >= y.first THEN date_trunc('month', t.planted_on)::date
               END AS month,
               count(*) AS n
        FROM smarttrees.trees t, year y GROUP BY 1, 2
    ), grid AS (
        SELECT DISTINCT p.commune_code, m.month FROM planted p, months m
    )
    SELECT g.commune_code || ':' || to_char(g.month, 'YYYY-MM') AS id,
           g.commune_code, g.month,
           coalesce((SELECT n FROM planted p WHERE p.commune_code = g.commune_code
                     AND p.month = g.month), 0) AS planted,
           (SELECT coalesce(sum(n), 0) FROM planted p WHERE p.commune_code = g.commune_code
            AND (p.month IS NULL OR p.month <= g.month))::bigint AS trees
    FROM grid g;
CREATE UNIQUE INDEX ioc_tree_count_month_id ON smarttrees.ioc_tree_count_month (id);

-- Citizen support: every published cell, before publication, with its suppression decided.
-- A partition is a set of cells adding up to a published total: the communes and the stranded
-- provinces each partition the province's cases; the statuses and the channels each partition
-- a commune's. A cell with 0 < n < k people is withheld (k: privacy_min_count, default 5), and
-- so is a cell that has nowhere to be shown (a commune no longer in force, an unknown province).
-- If the cells withheld in a partition add up to fewer than k people, its total minus the cells
-- shown would single them out, so the smallest shown cell is withheld too: the withheld cells
-- then add up to k or more. Restricted schema: the raw counts here are not public.
CREATE VIEW restricted.citizen_support_cells AS
    WITH k AS (
        SELECT smarttrees.ioc_parameter('privacy_min_count', 5) AS k
    ), cells AS (
        SELECT 'commune'::text AS part, ''::text AS parent, commune_code AS cell,
               count(*) AS n, sum(amount_vnd) AS amount_vnd,
               EXISTS (SELECT FROM smarttrees.communes c WHERE c.code = commune_code) AS mapped
        FROM restricted.citizen_support_cases GROUP BY commune_code
        UNION ALL
        SELECT 'province', '', coalesce(stranded_province, ''), count(*), sum(amount_vnd),
               EXISTS (SELECT FROM smarttrees.support_provinces p WHERE p.code = stranded_province)
        FROM restricted.citizen_support_cases GROUP BY stranded_province
        UNION ALL
        SELECT 'status', commune_code, status, count(*), sum(amount_vnd), true
        FROM restricted.citizen_support_cases GROUP BY commune_code, status
        UNION ALL
        SELECT 'channel', commune_code, coalesce(channel, ''), count(*), sum(amount_vnd),
               channel IS NOT NULL
        FROM restricted.citizen_support_cases GROUP BY commune_code, channel
    ), marked AS (
        SELECT c.*, k.k, (c.n < k.k OR NOT c.mapped) AS primary_withheld FROM cells c, k
    ), ranked AS (
        SELECT m.*,
               sum(m.n) FILTER (WHERE m.primary_withheld)
                   OVER (PARTITION BY m.part, m.parent) AS withheld_people,
               row_number() OVER (PARTITION BY m.part, m.parent, m.primary_withheld
                                  ORDER BY m.n, m.cell) AS rank_among
        FROM marked m
    )
    SELECT part, parent, cell, n, amount_vnd, mapped,
           primary_withheld
           OR (rank_among = 1 AND coalesce(withheld_people, 0) BETWEEN 1 AND k - 1) AS withheld
    FROM ranked;

-- The public faces: totals per commune (as before 0011, now with complementary suppression).
DROP VIEW smarttrees.citizen_support_by_commune;
CREATE VIEW smarttrees.citizen_support_by_commune AS
    SELECT c.code AS commune_code, c.name AS commune_name,
           CASE WHEN NOT coalesce(s.withheld, false) THEN coalesce(s.n, 0) END AS people,
           CASE WHEN NOT coalesce(s.withheld, false) THEN coalesce(s.amount_vnd, 0) END
               AS amount_vnd,
           coalesce(s.withheld, false) AS suppressed,
           c.geom
    FROM smarttrees.communes c
    LEFT JOIN restricted.citizen_support_cells s
        ON s.part = 'commune' AND s.cell = c.code;

-- Per commune, by status and by channel; every cell of a withheld commune is withheld.
CREATE VIEW smarttrees.citizen_support_by_commune_detail AS
    SELECT d.parent || ':' || d.part || ':' || d.cell AS id,
           c.code AS commune_code, c.name AS commune_name,
           d.part AS dimension, d.cell AS value,
           CASE WHEN NOT (d.withheld OR t.withheld) THEN d.n END AS people,
           CASE WHEN NOT (d.withheld OR t.withheld) THEN d.amount_vnd END AS amount_vnd,
           d.withheld OR t.withheld AS suppressed,
           c.geom
    FROM restricted.citizen_support_cells d
    JOIN restricted.citizen_support_cells t ON t.part = 'commune' AND t.cell = d.parent
    JOIN smarttrees.communes c ON c.code = d.parent
    WHERE d.part IN ('status', 'channel') AND d.mapped;

-- Per province where people were stranded, at the province's point.
CREATE VIEW smarttrees.citizen_support_by_province AS
    SELECT p.code AS province_code, p.name AS province_name,
           CASE WHEN NOT coalesce(s.withheld, false) THEN coalesce(s.n, 0) END AS people,
           CASE WHEN NOT coalesce(s.withheld, false) THEN coalesce(s.amount_vnd, 0) END
               AS amount_vnd,
           coalesce(s.withheld, false) AS suppressed,
           p.geom
    FROM smarttrees.support_provinces p
    LEFT JOIN restricted.citizen_support_cells s ON s.part = 'province' AND s.cell = p.code;
