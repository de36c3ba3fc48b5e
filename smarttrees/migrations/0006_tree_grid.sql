-- depends: 0001_core
-- Trees counted per fine Web Mercator grid cell and category, so that low-zoom vector tiles
-- add up a few thousand cells instead of reading a million trees (gis_api.tiles).
-- Cells are those of zoom level 17 (2^17 cells across the world, about 285 m at 21.6° N):
-- i counts from the west edge, j from the north edge, like tile columns and rows. mx, my are
-- Web Mercator metres, summed so that a coarser cell's mean position can be rebuilt exactly.
CREATE MATERIALIZED VIEW smarttrees.tree_grid AS
    SELECT floor((m.mx + 20037508.342789244) / (40075016.68557849 / 131072))::integer AS i,
           floor((20037508.342789244 - m.my) / (40075016.68557849 / 131072))::integer AS j,
           m.category,
           count(*)::integer AS n,
           sum(m.mx) AS sum_mx,
           sum(m.my) AS sum_my
    FROM (
        SELECT t.category,
               ST_X(t.geom) * 20037508.342789244 / 180 AS mx,
               ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137 AS my
        FROM smarttrees.trees t
    ) m
    GROUP BY 1, 2, 3;
CREATE UNIQUE INDEX tree_grid_cell_idx ON smarttrees.tree_grid (i, j, category);

-- The tree data version tree_grid was computed at (the newest tree_history id: every insert,
-- update or delete of a tree advances it). Refreshed with tree_grid in one transaction; the
-- tiles use tree_grid only while this equals the current version.
CREATE MATERIALIZED VIEW smarttrees.tree_grid_version AS
    SELECT coalesce(max(id), 0) AS version FROM smarttrees.tree_history;
CREATE UNIQUE INDEX tree_grid_version_idx ON smarttrees.tree_grid_version (version);
