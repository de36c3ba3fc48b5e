-- Grid counts of a low-zoom tile, added up from the precomputed level-17 cells of
-- smarttrees.tree_grid (migration 0006): the layer "trees_grid", like tiles_trees_grid.sql.
-- A tile (z, x, y) covers cells i in [i0, i0 + span) and j in [j0, j0 + span), span = 2^(17-z);
-- an output cell gathers 2^shift level-17 cells on each side. The bounds come from the caller
-- (i1 = i0 + span) and are cast: psycopg sends a small Python int as a smallint, and smallint
-- arithmetic in SQL would overflow at 32,768 (the east and south edges of tiles at z3-z12).
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
    SELECT cells.count, cells.urban, cells.scattered, cells.plantation, cells.geom
    FROM (
        SELECT g.i >> %(shift)s::integer AS ci, g.j >> %(shift)s::integer AS cj,
               sum(g.n)::integer AS count,
               coalesce(sum(g.n) FILTER (WHERE g.category = 'urban'), 0)::integer AS urban,
               coalesce(sum(g.n) FILTER (WHERE g.category = 'scattered'), 0)::integer
                   AS scattered,
               coalesce(sum(g.n) FILTER (WHERE g.category = 'plantation'), 0)::integer
                   AS plantation,
               ST_AsMVTGeom(
                   ST_SetSRID(ST_MakePoint(sum(g.sum_mx) / sum(g.n), sum(g.sum_my) / sum(g.n)),
                              3857),
                   ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false
               ) AS geom
        FROM smarttrees.tree_grid g
        WHERE g.i >= %(i0)s::integer AND g.i < %(i1)s::integer
          AND g.j >= %(j0)s::integer AND g.j < %(j1)s::integer
          {filters}
        GROUP BY 1, 2
        OFFSET 0  -- a fence: the rows grouped as the planner likes, then the cells sorted
    ) cells
    -- the cells in a fixed order (a hash's order follows the plan, which can change once
    -- tree_grid is analysed), so that a tile's bytes are the same from the live server and
    -- from the archive
    ORDER BY cells.ci, cells.cj
) mvt
