-- depends: 0030_first_load_indexes
-- Trees counted per zoom-20 Web Mercator cell (about 36 m at 21.6 deg N), by category as
-- columns: the cells of the 64 x 64 grid a zoom-14 tile carries when it holds more trees than
-- the feature cap (gis_api.tiles.render, DENSE_GRID_CELLS), so that such a tile reads its cells
-- by one index range instead of grouping its ten thousand trees (zoom 13: four cells each).
-- Cells as in tree_grid (0006): i from the west edge, j from the north edge; mx, my summed in
-- the order the trees are read, as the grid over the trees averages them. key is the cell's
-- Morton code (the bits of i and j interleaved), so that the cells of any tile of zoom 20 or
-- coarser are one range of keys: tile (z, x, y) holds keys [m(x, y), m(x, y) + 1) * 4^(20 - z).
-- Refreshed with tree_grid (gis_api.tiles.render.refresh_tree_grid) and used while tree_grid is.

-- The bits of a 20-bit integer spread to the even bit positions (bit k to bit 2k).
CREATE FUNCTION smarttrees.morton_spread(v bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ((v & 1) << 0) | ((v & 2) << 1) | ((v & 4) << 2) | ((v & 8) << 3) | ((v & 16) << 4) | ((v & 32) << 5) | ((v & 64) << 6) | ((v & 128) << 7) | ((v & 256) << 8) | ((v & 512) << 9) | ((v & 1024) << 10) | ((v & 2048) << 11) | ((v & 4096) << 12) | ((v & 8192) << 13) | ((v & 16384) << 14) | ((v & 32768) << 15) | ((v & 65536) << 16) | ((v & 131072) << 17) | ((v & 262144) << 18) | ((v & 524288) << 19);

-- Its sums in the order the trees are stored, as the grid over the trees adds them (a bitmap
-- scan reads the heap in order): one seq scan from the table's start, grouped with a hash (a
-- sort's order within a group is arbitrary, parallel workers add partial sums). The refresh
-- runs with the same settings (gis_api.tiles.render.refresh_tree_grid).
SET LOCAL synchronize_seqscans = off;
SET LOCAL max_parallel_workers_per_gather = 0;
SET LOCAL work_mem = '256MB';
CREATE MATERIALIZED VIEW smarttrees.tree_grid_fine AS
    SELECT smarttrees.morton_spread(c.i) | (smarttrees.morton_spread(c.j) << 1) AS key,
           c.i, c.j, c.n, c.urban, c.scattered, c.plantation, c.sum_mx, c.sum_my
    FROM (
        SELECT floor((m.mx + 20037508.342789244) / (40075016.68557849 / 1048576))::integer AS i,
               floor((20037508.342789244 - m.my) / (40075016.68557849 / 1048576))::integer AS j,
               count(*)::integer AS n,
               (count(*) FILTER (WHERE m.category = 'urban'))::integer AS urban,
               (count(*) FILTER (WHERE m.category = 'scattered'))::integer AS scattered,
               (count(*) FILTER (WHERE m.category = 'plantation'))::integer AS plantation,
               sum(m.mx) AS sum_mx,
               sum(m.my) AS sum_my
        FROM (
            SELECT t.category,
                   ST_X(t.geom) * 20037508.342789244 / 180 AS mx,
                   ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137 AS my
            FROM smarttrees.trees t
        ) m
        GROUP BY 1, 2
    ) c
    ORDER BY 1;  -- stored in key order: a tile's cells sit on a few neighbouring pages
CREATE UNIQUE INDEX tree_grid_fine_key_idx ON smarttrees.tree_grid_fine (key);
