-- Grid counts of a low-zoom tile, added up from the precomputed level-17 cells of
-- smarttrees.tree_grid (migration 0006): the layer "trees_grid", like tiles_trees_grid.sql.
-- A tile (z, x, y) covers cells i in [i0, i0 + span) and j in [j0, j0 + span), span = 2^(17-z);
-- an output cell gathers 2^shift level-17 cells on each side.
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
    SELECT sum(g.n)::integer AS count,
           coalesce(sum(g.n) FILTER (WHERE g.category = 'urban'), 0)::integer AS urban,
           coalesce(sum(g.n) FILTER (WHERE g.category = 'scattered'), 0)::integer AS scattered,
           coalesce(sum(g.n) FILTER (WHERE g.category = 'plantation'), 0)::integer AS plantation,
           ST_AsMVTGeom(
               ST_SetSRID(ST_MakePoint(sum(g.sum_mx) / sum(g.n), sum(g.sum_my) / sum(g.n)), 3857),
               ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false
           ) AS geom
    FROM smarttrees.tree_grid g
    WHERE g.i >= %(i0)s AND g.i < %(i0)s + %(span)s
      AND g.j >= %(j0)s AND g.j < %(j0)s + %(span)s
      {filters}
    GROUP BY g.i >> %(shift)s, g.j >> %(shift)s
) mvt
