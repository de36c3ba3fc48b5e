-- Individual trees in one tile, as the MVT layer "trees" (field names those of the catalogue,
-- smarttrees.catalog.TREES); NULL when the tile holds more than
-- %(limit)s trees (the caller then sends grid counts instead).
-- Rows are picked with the GIST index (envelope transformed to 4326 once, with a margin so that
-- circles on a tile edge are drawn whole); only the rows picked are transformed to 3857.
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
), picked AS MATERIALIZED (
    SELECT t.id, t.tree_code, t.category, t.species_id, t.condition, t.dbh_cm, t.geom
    FROM smarttrees.trees t
    CROSS JOIN bounds b
    WHERE t.geom && b.area
      {filters}
    LIMIT %(limit)s::integer + 1  -- cast: a smallint parameter + 1 overflows at 32,767
)
SELECT CASE WHEN (SELECT count(*) FROM picked) <= %(limit)s THEN (
    SELECT ST_AsMVT(mvt, 'trees', 4096, 'geom', 'id')
    FROM (
        SELECT p.id,
               p.tree_code,
               p.category,
               s.scientific_name AS species_name,
               s.vietnamese_name AS species_vi,
               p.condition,
               round(p.dbh_cm::numeric, 1)::float8 AS dbh_cm,
               ST_AsMVTGeom(ST_Transform(p.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
        FROM picked p
        CROSS JOIN bounds b
        LEFT JOIN smarttrees.species s ON s.id = p.species_id
    ) mvt
) END
