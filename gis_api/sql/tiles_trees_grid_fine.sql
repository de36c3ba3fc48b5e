-- Grid counts of a point-zoom tile over the feature cap (64 x 64 cells, layer "trees_grid"),
-- read from the zoom-20 cells of smarttrees.tree_grid_fine (migration 0034): the tile's cells
-- are the keys [%(k0)s, %(k1)s) of its index, and an output cell gathers 2^%(fine_shift)s cells on
-- each side (zoom 14: one; zoom 13: two). Counts, means and order are those of
-- tiles_trees_grid.sql over the trees: a cell's point at sum(mx) / count, cells by position.
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
    SELECT c.count, c.urban, c.scattered, c.plantation,
           ST_AsMVTGeom(
               ST_SetSRID(ST_MakePoint(c.sum_mx / c.count, c.sum_my / c.count), 3857),
               ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false
           ) AS geom
    FROM (
        SELECT g.i >> %(fine_shift)s::integer AS ci, g.j >> %(fine_shift)s::integer AS cj,
               sum(g.n)::integer AS count, sum(g.urban)::integer AS urban,
               sum(g.scattered)::integer AS scattered, sum(g.plantation)::integer AS plantation,
               sum(g.sum_mx) AS sum_mx, sum(g.sum_my) AS sum_my
        FROM smarttrees.tree_grid_fine g
        WHERE g.key >= %(k0)s::bigint AND g.key < %(k1)s::bigint
        GROUP BY 1, 2
    ) c
    ORDER BY c.ci, c.cj DESC  -- as the grid over the trees: its rows count from the south
) mvt
