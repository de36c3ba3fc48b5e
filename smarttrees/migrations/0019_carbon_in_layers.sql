-- depends: 0010_tree_carbon 0011_ioc
-- Carbon in the published layers, and one tree's history found by its code.
--
-- 1. tree_history by tree_code: db.history(tree_code=…) and a tree's trace read one tree's
--    rows, oldest first; without this index every call scanned the whole history (one row per
--    change of every tree: 1.13 M rows after the first load of the province).
-- 2. tree_carbon_by_commune: the per-commune totals of tree_carbon, refreshed with it
--    (smarttrees.carbon.refresh), so the IOC tree layer (trees_by_commune) and commune_carbon
--    read 92 stored rows instead of adding up 1.13 M trees at every request. (Its name sorts
--    after tree_carbon: the bulk loader refreshes every materialised view in name order.)

CREATE INDEX tree_history_code_idx ON smarttrees.tree_history (tree_code, changed_at);

CREATE MATERIALIZED VIEW smarttrees.tree_carbon_by_commune AS
    SELECT coalesce(commune_code, '') AS commune_code,
           count(*) AS trees, count(equation) AS estimated,
           sum(agb_kg) / 1000 AS agb_t, sum(carbon_kg) / 1000 AS carbon_t,
           sum(co2e_kg) / 1000 AS co2e_t
    FROM smarttrees.tree_carbon GROUP BY 1
    WITH DATA;
CREATE UNIQUE INDEX tree_carbon_by_commune_code ON smarttrees.tree_carbon_by_commune (commune_code);

-- The same columns as migration 0010's view, now from the stored sums.
CREATE OR REPLACE VIEW smarttrees.commune_carbon AS
    SELECT c.code AS commune_code, c.name AS commune_name,
           coalesce(a.trees, 0) AS trees, coalesce(a.estimated, 0) AS estimated,
           a.agb_t, a.carbon_t, a.co2e_t, c.geom
    FROM smarttrees.communes c
    LEFT JOIN smarttrees.tree_carbon_by_commune a ON a.commune_code = c.code;
