-- Plantation stands in one tile, as the MVT layer "stands" (no owner names: personal data).
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'stands', 4096, 'geom', 'id')
FROM (
    SELECT st.id,
           st.stand_code,
           s.vietnamese_name AS species_vi,
           st.planting_year::integer AS planting_year,
           st.area_ha::float8 AS area_ha,
           st.forest_function,
           st.commune_code,
           ST_AsMVTGeom(ST_Transform(st.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.stands st
    CROSS JOIN bounds b
    LEFT JOIN smarttrees.species s ON s.id = st.species_id
    WHERE st.geom && b.area
    ORDER BY st.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
