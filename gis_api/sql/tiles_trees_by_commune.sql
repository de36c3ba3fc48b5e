-- Trees per commune with the planting progress, as the MVT layer "trees_by_commune": the
-- figures of the trees_by_commune collection (ioc_trees_by_commune, tree_carbon_by_commune,
-- planting_targets).
WITH bounds AS (
    SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
           ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS area
)
SELECT ST_AsMVT(mvt, 'trees_by_commune', 4096, 'geom', 'id')
FROM (
    SELECT c.id,
           i.commune_code,
           i.commune_name,
           i.trees,
           i.urban,
           i.scattered,
           i.plantation,
           i.trees_per_km2::float8 AS trees_per_km2,
           s.carbon_t::float8 AS carbon_t,
           p.target,
           round(i.trees::numeric / nullif(p.target, 0), 4)::float8 AS progress,
           ST_AsMVTGeom(ST_Transform(i.geom, 3857), b.tile, 4096, %(buffer)s, true) AS geom
    FROM smarttrees.ioc_trees_by_commune i
    JOIN smarttrees.communes c ON c.code = i.commune_code
    CROSS JOIN bounds b
    LEFT JOIN smarttrees.tree_carbon_by_commune s ON s.commune_code = i.commune_code
    LEFT JOIN smarttrees.planting_targets p ON p.commune_code = i.commune_code
    WHERE i.geom && b.area
    ORDER BY c.id
    LIMIT %(limit)s
) mvt
WHERE mvt.geom IS NOT NULL
