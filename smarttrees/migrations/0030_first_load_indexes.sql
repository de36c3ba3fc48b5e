-- depends: 0001_core 0008_row_counts
-- The first load of a survey into an empty inventory (issue 11): fewer indexes to build, and
-- those left built after the commit, two at a time.
--
-- 1. trees_category_idx goes. Three categories, the rarest (urban) 14 % of the province's
--    trees: every query that filters on category reads better without it. Checked with
--    EXPLAIN ANALYZE on the 1.13 M-tree province: the OGC items' pages (ORDER BY id) take the
--    primary key either way; their capped numberMatched count (LIMIT 10,001) reads the table
--    until it has enough (3.9 ms, 0.8 ms with the index); vector tiles and the analyst's
--    bbox reads with a category filter were ANDed with a 160,000-entry bitmap of this index
--    (15.8 ms a tile) and now filter the GiST's rows (5.0 ms); the care due list and the
--    commune reads go through trees_commune_idx and filter. Only a count of one category over
--    the whole province is slower (66 ms to 120 ms), and no page or tile asks for one (the IOC
--    counts and tile grids aggregate every category in one scan). Its build was 1.3–1.6 s of
--    every first load, and it was written at every insert and every change of category.
DROP INDEX smarttrees.trees_category_idx;

-- 2. The secondary indexes of trees and tree_history that a first load commits without (they
--    guard nothing: keys and foreign keys are built before the commit) and builds right after
--    it, in two sessions (etl.bulk.build_deferred). Each row goes in the same transaction as
--    the build of its index, so a row is left only where a load stopped before building it:
--    the next load builds it first.
CREATE TABLE smarttrees.deferred_indexes (
    definition  text PRIMARY KEY,                -- pg_get_indexdef of the index dropped
    table_name  text NOT NULL,                   -- schema.table
    deferred_at timestamptz NOT NULL DEFAULT now()
);
