-- As tiles_trees_grid_fine.sql where a tile's grid cell is one zoom-20 cell (zoom 14): the
-- cells are read as they are stored, without grouping them again.
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
    SELECT g.n AS count, g.urban, g.scattered, g.plantation,
           ST_AsMVTGeom(
               ST_SetSRID(ST_MakePoint(g.sum_mx / g.n, g.sum_my / g.n), 3857),
               ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false
           ) AS geom
    FROM smarttrees.tree_grid_fine g
    WHERE g.key >= %(k0)s::bigint AND g.key < %(k1)s::bigint
    ORDER BY g.i, g.j DESC  -- as the grid over the trees: its rows count from the south
) mvt
