-- The trees tile of a point zoom, as columns for gis_api.tiles.mvt to encode (layer "trees"),
-- or, when the tile holds more than %(limit)s trees, its grid counts ({grid}, an MVT); a tile of
-- %(small)s trees or fewer is encoded here by ST_AsMVT ("small": numpy's fixed cost per tile
-- is more than ST_AsMVT's for a few trees).
-- {crowded}: whether tree_grid already counts more than the cap (then no tree is picked).
-- Rows are picked with the GIST index (envelope transformed to 4326 once, with a margin so that
-- circles on a tile edge are drawn whole). Each point's tile-space x/y is computed from its
-- lon/lat arithmetically (spherical Web Mercator, what ST_Transform to 3857 gives), scaled by
-- %(scale)s tile units per metre from the tile's west and north edges; points beyond the edge
-- buffer once rounded are dropped, as ST_AsMVTGeom(…, clip => true) does (rounding half to
-- even, as it does: 4128.5 is kept as 4128).
-- Numbers travel packed (each value's binary form, int8send & co., back to back; x and y fit
-- int2), text as the values back to back with their byte lengths (-1: NULL), so that the
-- server reads them with numpy, not one Python object each.
WITH crowd AS MATERIALIZED (
    SELECT {crowded} AS over
), picked AS MATERIALIZED (
    SELECT t.id, t.tree_code, t.category, t.species_id, t.condition, t.dbh_cm,
           round((ST_X(t.geom) * 20037508.342789244 / 180 - %(west)s) * %(scale)s)::integer
               AS tx,
           round((%(north)s - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137)
               * %(scale)s)::integer AS ty
    FROM smarttrees.trees t
    WHERE NOT (SELECT over FROM crowd)
      AND t.geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)
      {filters}
    LIMIT %(limit)s::integer + 1  -- cast: a smallint parameter + 1 overflows at 32,767
), placed AS (
    SELECT p.*
    FROM picked p
    WHERE (SELECT count(*) FROM picked) <= %(limit)s
      AND p.tx BETWEEN -%(buffer)s AND 4096 + %(buffer)s
      AND p.ty BETWEEN -%(buffer)s AND 4096 + %(buffer)s
    -- a fixed order, whatever plan picked the rows (GiST order or the heap's), so a tile's
    -- bytes are the same from the archive and the live server; the aggregates below read it
    ORDER BY p.id
), placed_count AS (
    SELECT count(*) AS n FROM placed
), species AS (
    -- the tile's species, looked up once each (a join per tree was planned as a nested loop),
    -- by id whatever the plan (the order of their values in the tile; a hash join's order
    -- differed between a small database and the province; tiles_trees_point_tile.sql too)
    SELECT string_agg(int4send(s.id), '' ORDER BY s.id) AS ids,
           string_agg(s.scientific_name, '' ORDER BY s.id) AS scientific,
           string_agg(int4send(coalesce(octet_length(s.scientific_name), -1)), '' ORDER BY s.id)
               AS scientific_len,
           string_agg(s.vietnamese_name, '' ORDER BY s.id) AS vietnamese,
           string_agg(int4send(coalesce(octet_length(s.vietnamese_name), -1)), '' ORDER BY s.id)
               AS vietnamese_len
    FROM smarttrees.species s
    WHERE (SELECT n FROM placed_count) > %(small)s
      AND s.id IN (SELECT p.species_id FROM placed p)
)
SELECT CASE WHEN (SELECT over FROM crowd) OR (SELECT count(*) FROM picked) > %(limit)s
            THEN ({grid}) END AS grid,
       -- a tile of few trees: ST_AsMVT costs less than sending columns to encode
       CASE WHEN (SELECT n FROM placed_count) <= %(small)s THEN (
           SELECT ST_AsMVT(mvt, 'trees', 4096, 'geom', 'id')
           FROM (
               SELECT p.id, p.tree_code, p.category,
                      s.scientific_name AS species_name, s.vietnamese_name AS species_vi,
                      p.condition, round(p.dbh_cm::numeric, 1)::float8 AS dbh_cm,
                      ST_MakePoint(p.tx, p.ty) AS geom  -- already in tile units
               FROM placed p
               LEFT JOIN smarttrees.species s ON s.id = p.species_id
               ORDER BY p.id
           ) mvt
       ) END AS small,
       a.*, s.*
FROM (
    SELECT string_agg(int8send(p.id), '') AS ids,
           string_agg(int2send(p.tx::smallint), '') AS x,
           string_agg(int2send(p.ty::smallint), '') AS y,
           string_agg(p.tree_code, '') AS tree_code,
           string_agg(int4send(octet_length(p.tree_code)), '') AS tree_code_len,
           string_agg(p.category, '') AS category,
           string_agg(int4send(octet_length(p.category)), '') AS category_len,
           string_agg(int4send(coalesce(p.species_id, 0)), '') AS species_id,
           string_agg(p.condition, '') AS condition,
           string_agg(int4send(coalesce(octet_length(p.condition), -1)), '') AS condition_len,
           string_agg(float4send(coalesce(p.dbh_cm, 'NaN')), '') AS dbh_cm
    FROM placed p
    WHERE (SELECT n FROM placed_count) > %(small)s
) a
CROSS JOIN species s
