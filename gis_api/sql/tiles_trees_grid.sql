-- Trees counted per grid cell (cells x cells per tile), by category, as the MVT layer
-- "trees_grid": what a tile shows where individual trees would be too many to draw or send.
-- Each cell's point sits at the mean position of its trees, so clusters sit where trees are.
-- Web Mercator x/y are computed from lon/lat arithmetically: the same numbers as ST_Transform
-- to 3857 for points, several times cheaper when a tile covers a million trees.
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile
), b AS (
    SELECT tile,
           ST_Transform(tile, 4326) AS area,
           ST_XMin(tile) AS x0,
           ST_YMin(tile) AS y0,
           (ST_XMax(tile) - ST_XMin(tile)) / %(cells)s AS size
    FROM bounds
), merc AS (
    SELECT t.category,
           ST_X(t.geom) * 20037508.342789244 / 180 AS mx,
           ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137 AS my
    FROM smarttrees.trees t
    CROSS JOIN b
    WHERE t.geom && b.area
      {filters}
), placed AS (
    SELECT m.*,
           floor((m.mx - b.x0) / b.size) AS cx,
           floor((m.my - b.y0) / b.size) AS cy
    FROM merc m
    CROSS JOIN b
), cells AS (
    -- && compares single-precision boxes and lets through points a hair outside the tile:
    -- keep only the cells of this tile, so a tree is counted in exactly one tile.
    SELECT count(*) AS n,
           count(*) FILTER (WHERE category = 'urban') AS urban,
           count(*) FILTER (WHERE category = 'scattered') AS scattered,
           count(*) FILTER (WHERE category = 'plantation') AS plantation,
           avg(mx) AS ax,
           avg(my) AS ay
    FROM placed
    WHERE cx >= 0 AND cx < %(cells)s AND cy >= 0 AND cy < %(cells)s
    GROUP BY cx, cy
)
SELECT ST_AsMVT(mvt, 'trees_grid', 4096, 'geom')
FROM (
    SELECT c.n::integer AS count,
           c.urban::integer AS urban,
           c.scattered::integer AS scattered,
           c.plantation::integer AS plantation,
           ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(c.ax, c.ay), 3857), b.tile, 4096, 0, false) AS geom
    FROM cells c
    CROSS JOIN b
) mvt
