-- Documents per commune over the whole register, as the MVT layer "documents_by_commune"
-- (from the commune-month layer, migration 0017's smarttrees.ioc_documents_by_commune).
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'documents_by_commune', 4096, 'geom', 'id')
FROM (
    SELECT c.id,
           d.commune_code,
           d.commune_name,
           d.documents,
           d.electronic,
           d.courier_saving_vnd,
           ST_AsMVTGeom(ST_Transform(d.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.ioc_documents_by_commune d
    JOIN smarttrees.communes c ON c.code = d.commune_code
    CROSS JOIN bounds b
    WHERE d.geom && b.area
    ORDER BY c.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
