-- Trees counted per grid cell (cells x cells per tile), by category, as the MVT layer
-- "trees_grid": what a tile shows where individual trees would be too many to draw or send.
-- Each cell's point sits at the mean position of its trees, so clusters sit where trees are.
-- Web Mercator x/y are computed from lon/lat arithmetically (the same numbers ST_Transform
-- gives for points, several times cheaper over a million trees). The tile's corner and cell
-- size (x0, y0, size) come from the caller; the envelope is written out (no CTE) so that the
-- planner, seeing constants, estimates the rows and aggregates with a hash, not a sort.
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
  SELECT c.count, c.urban, c.scattered, c.plantation, c.geom
  FROM (
    SELECT p.cx, p.cy,
           count(*)::integer AS count,
           (count(*) FILTER (WHERE p.category = 'urban'))::integer AS urban,
           (count(*) FILTER (WHERE p.category = 'scattered'))::integer AS scattered,
           (count(*) FILTER (WHERE p.category = 'plantation'))::integer AS plantation,
           ST_AsMVTGeom(
               ST_SetSRID(ST_MakePoint(avg(p.mx), avg(p.my)), 3857),
               ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 0, false
           ) AS geom
    FROM (
        SELECT m.category, m.mx, m.my,
               floor((m.mx - %(x0)s) / %(size)s)::integer AS cx,
               floor((m.my - %(y0)s) / %(size)s)::integer AS cy
        FROM (
            SELECT t.category,
                   ST_X(t.geom) * 20037508.342789244 / 180 AS mx,
                   ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137 AS my
            FROM smarttrees.trees t
            WHERE t.geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326)
              {filters}
            OFFSET 0  -- a fence: mx and my computed once per tree, not again in each use
        ) m
    ) p
    GROUP BY p.cx, p.cy
    OFFSET 0  -- a fence: seeing the cell test below, the planner expects one row and sorts
  ) c
  -- && compares single-precision boxes and lets through points a hair outside the tile:
  -- keep only this tile's cells, so a tree is counted in exactly one tile. Tested after the
  -- grouping (the cells outside hold a stray tree or two): before it, the planner expected
  -- one row and sorted ten thousand trees to group them, where a hash costs a fifth less.
  WHERE c.cx >= 0 AND c.cx < %(cells)s AND c.cy >= 0 AND c.cy < %(cells)s
  -- the cells in a fixed order (a hash's order follows the plan), so that a tile's bytes are
  -- the same from the live server and from the archive; a sort of at most cells² rows
  ORDER BY c.cx, c.cy
) mvt
