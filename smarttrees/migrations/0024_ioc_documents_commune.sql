-- depends: 0017_ioc_targets_tiles
-- Documents per commune as a materialised view, refreshed with the other document layers.
-- The documents_by_commune collection and its tiles added up the 1.9 M-row register on every
-- request (224 ms a page against 8 ms for the trees); they read this instead. It counts by the
-- document's own commune, as the collection always did (not its agency's commune, which the
-- monthly layers use).

CREATE MATERIALIZED VIEW smarttrees.ioc_documents_commune AS
SELECT coalesce(commune_code, '') AS commune_code,
       count(*)::bigint AS documents,
       count(*) FILTER (WHERE electronic)::bigint AS electronic,
       coalesce(sum(courier_saving_vnd), 0)::bigint AS courier_saving_vnd
FROM smarttrees.documents
GROUP BY 1;

CREATE UNIQUE INDEX ioc_documents_commune_key ON smarttrees.ioc_documents_commune (commune_code);
