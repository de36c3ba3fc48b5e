-- depends: 0011_ioc
-- The IOC, continued (issue 13): per-commune planting targets, a data version for the IOC's
-- vector tiles, and the document layers computed from one pass over the register.

-- Planting targets per commune (`smarttrees load targets FILE`); the province's own target is
-- the setting SMARTTREES_PLANTING_TARGET.
CREATE TABLE smarttrees.planting_targets (
    commune_code text PRIMARY KEY,
    target       integer NOT NULL CHECK (target >= 0),
    source       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The IOC layers' data version: advanced by every IOC load and refresh (smarttrees.ioc.refresh),
-- so tiles cached under it are never served after the figures changed.
CREATE TABLE smarttrees.ioc_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO smarttrees.ioc_version DEFAULT VALUES;

-- The register read once: documents per sender, receiver(s), month and channel (a few
-- thousand rows for 1.9 M documents). The agency, commune and flow layers add it up, so a
-- refresh reads the register once instead of twice. No receiver is 0 (ids start at 1). The
-- name sorts before the layers it feeds: `smarttrees generate` refreshes every materialised
-- view in name order.
CREATE MATERIALIZED VIEW smarttrees.ioc_doc_pair_month AS
    SELECT agency_id, coalesce(receiver_id, 0) AS receiver_id,
           coalesce(also_to, '{}') AS also_to, date_trunc('month', sent_on)::date AS month,
           electronic, count(*) AS documents, min(sent_on) AS first_on, max(sent_on) AS last_on
    FROM smarttrees.documents
    GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX ioc_doc_pair_month_key
    ON smarttrees.ioc_doc_pair_month (agency_id, receiver_id, also_to, month, electronic);

-- The same three layers as 0011 (names, columns, types and figures), now from the pairs.
DROP MATERIALIZED VIEW smarttrees.ioc_documents_commune_month;
DROP MATERIALIZED VIEW smarttrees.ioc_documents_agency_month;
DROP MATERIALIZED VIEW smarttrees.ioc_document_flows;

CREATE MATERIALIZED VIEW smarttrees.ioc_documents_agency_month AS
    WITH sent AS (
        SELECT agency_id, month, sum(documents)::bigint AS sent,
               coalesce(sum(documents) FILTER (WHERE electronic), 0)::bigint AS sent_electronic,
               min(first_on) AS first_on, max(last_on) AS last_on
        FROM smarttrees.ioc_doc_pair_month GROUP BY 1, 2
    ), receipts AS (
        SELECT receiver_id AS agency_id, month, electronic, documents
        FROM smarttrees.ioc_doc_pair_month WHERE receiver_id <> 0
        UNION ALL
        SELECT r.agency_id, p.month, p.electronic, p.documents
        FROM smarttrees.ioc_doc_pair_month p, unnest(p.also_to) AS r(agency_id)
    ), received AS (
        SELECT agency_id, month, sum(documents)::bigint AS received,
               coalesce(sum(documents) FILTER (WHERE electronic), 0)::bigint
                   AS received_electronic
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

CREATE MATERIALIZED VIEW smarttrees.ioc_document_flows AS
    WITH pairs AS (
        SELECT agency_id AS sender_id, receiver_id, month, electronic, documents
        FROM smarttrees.ioc_doc_pair_month WHERE receiver_id <> 0
        UNION ALL
        SELECT p.agency_id, r.agency_id, p.month, p.electronic, p.documents
        FROM smarttrees.ioc_doc_pair_month p, unnest(p.also_to) AS r(agency_id)
    ), counted AS (
        SELECT sender_id, receiver_id, month, sum(documents)::bigint AS documents,
               coalesce(sum(documents) FILTER (WHERE electronic), 0)::bigint AS electronic
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

-- Documents per commune over the whole register, for its vector tiles (the figures of the
-- documents_by_commune collection, read from the small commune-month layer).
CREATE VIEW smarttrees.ioc_documents_by_commune AS
    SELECT c.code AS commune_code, c.name AS commune_name,
           coalesce(sum(m.sent), 0)::bigint AS documents,
           coalesce(sum(m.sent_electronic), 0)::bigint AS electronic,
           round(sum(m.sent_electronic) / nullif(sum(m.sent), 0), 4) AS electronic_share,
           coalesce(sum(m.courier_saving_vnd), 0)::bigint AS courier_saving_vnd,
           c.geom
    FROM smarttrees.communes c
    LEFT JOIN smarttrees.ioc_documents_commune_month m ON m.commune_code = c.code
    GROUP BY c.code, c.name, c.geom;
