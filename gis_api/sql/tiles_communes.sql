-- Communes in force today, as the MVT layer "communes".
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'communes', 4096, 'geom', 'id')
FROM (
    SELECT c.id,
           c.code,
           c.name,
           c.unit_type,
           ST_AsMVTGeom(ST_Transform(c.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.communes c
    CROSS JOIN bounds b
    WHERE c.geom && b.area
    ORDER BY c.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
