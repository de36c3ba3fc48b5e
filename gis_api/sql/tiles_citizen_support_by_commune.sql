-- Citizen support per commune, as the MVT layer "citizen_support_by_commune": the view the
-- collection publishes, so a withheld commune has no people or amount here either (complementary
-- suppression, migration 0011), only suppressed = true.
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'citizen_support_by_commune', 4096, 'geom', 'id')
FROM (
    SELECT c.id,
           s.commune_code,
           s.commune_name,
           s.people,
           s.amount_vnd::bigint AS amount_vnd,  -- numeric would be sent as text
           s.suppressed,
           ST_AsMVTGeom(ST_Transform(s.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.citizen_support_by_commune s
    JOIN smarttrees.communes c ON c.code = s.commune_code
    CROSS JOIN bounds b
    WHERE s.geom && b.area
    ORDER BY c.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
