-- Individual trees in one tile, as the MVT layer "trees".
-- Rows are picked with the GIST index (envelope transformed to 4326 once, with a margin so that
-- circles on a tile edge are drawn whole); only the rows picked are transformed to 3857.
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'trees', 4096, 'geom', 'id')
FROM (
    SELECT t.id,
           t.tree_code,
           t.category,
           s.vietnamese_name AS species,
           t.condition,
           round(t.dbh_cm::numeric, 1)::float8 AS dbh,
           ST_AsMVTGeom(ST_Transform(t.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.trees t
    CROSS JOIN bounds b
    LEFT JOIN smarttrees.species s ON s.id = t.species_id
    WHERE t.geom && b.area
      {filters}
    ORDER BY t.id
    LIMIT %(limit)s
) mvt
