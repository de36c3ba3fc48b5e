-- Inspected trees in one tile with their risk class and next due date, as the MVT layer
-- "care_inspections_due" (tree care, migration 0012_care_inspections).
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'care_inspections_due', 4096, 'geom', 'id')
FROM (
    SELECT s.tree_id AS id,
           s.tree_code,
           s.risk,
           s.next_due::text AS next_due,
           s.commune_code,
           ST_AsMVTGeom(ST_Transform(s.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.care_tree_status s
    CROSS JOIN bounds b
    WHERE s.geom && b.area
    ORDER BY s.next_due, s.tree_id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
