-- Storm damage records in one tile, most urgent first, as the MVT layer "care_storm_damage"
-- (tree care, migration 0012_care_storms). No device or account.
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'care_storm_damage', 4096, 'geom', 'id')
FROM (
    SELECT d.id,
           d.storm_id,
           d.damage,
           d.priority::integer AS priority,
           d.commune_code,
           ST_AsMVTGeom(ST_Transform(d.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.care_damage d
    CROSS JOIN bounds b
    WHERE d.geom && b.area
    ORDER BY d.priority, d.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
