-- depends: 0034_tree_grid_fine
-- The trees of each zoom-15 tile, picked, placed and packed as gis_api/sql/tiles_trees_points.sql
-- sends them (ids, tile-space x/y, the properties' values back to back with their lengths),
-- so that an uncached z15 point tile reads one row by its unique index instead of picking and
-- placing its thousands of trees (gis_api.tiles.render: 7-8 ms of PostgreSQL CPU a tile).
-- Only tiles of more than 300 placed trees (render.FEW_POINTS: fewer are encoded by ST_AsMVT
-- in the live statement); picked counts the trees in the tile's margin box before the edge
-- test, as the live statement compares with the feature cap. The tile's species are kept as
-- their ids (their names are read from smarttrees.species with the tile, as the live statement
-- does). Candidate tiles are those holding a zoom-20 cell of smarttrees.tree_grid_fine.
-- Each tile's west and north edges and its units per metre are computed as morecantile computes
-- them (gis_api.tiles.grid.tile_origin: origin + (x * cell size) * 256), and each tree's x/y
-- with the live statement's own expressions, so the columns (hence the tiles) are the same.
-- Refreshed with tree_grid (gis_api.tiles.render.refresh_tree_grid) and used while tree_grid
-- is current, for tiles without filters.
CREATE MATERIALIZED VIEW smarttrees.tree_point_tiles AS
    SELECT tl.x, tl.y, a.*
    FROM (SELECT DISTINCT g.i >> 5 AS x, g.j >> 5 AS y FROM smarttrees.tree_grid_fine g) tl
    CROSS JOIN LATERAL (
        SELECT -20037508.342789244::float8 + (tl.x * 4.777314267823516::float8) * 256 AS west,
               20037508.342789244::float8 - ((tl.y + 1) * 4.777314267823516::float8) * 256
                   AS south,
               -20037508.342789244::float8 + ((tl.x + 1) * 4.777314267823516::float8) * 256
                   AS east
    ) e
    CROSS JOIN LATERAL (
        SELECT e.west, e.south + (e.east - e.west) AS north, 4096 / (e.east - e.west) AS scale
    ) c
    CROSS JOIN LATERAL (
        SELECT count(*)::integer AS picked,
               (count(*) FILTER (WHERE p.inside))::integer AS placed,
               array_agg(DISTINCT p.species_id) FILTER (WHERE p.inside) AS species,
               string_agg(int8send(p.id), '') FILTER (WHERE p.inside) AS ids,
               string_agg(int2send(p.tx::smallint), '') FILTER (WHERE p.inside) AS px,
               string_agg(int2send(p.ty::smallint), '') FILTER (WHERE p.inside) AS py,
               string_agg(p.tree_code, '') FILTER (WHERE p.inside) AS tree_code,
               string_agg(int4send(octet_length(p.tree_code)), '') FILTER (WHERE p.inside)
                   AS tree_code_len,
               string_agg(p.category, '') FILTER (WHERE p.inside) AS category,
               string_agg(int4send(octet_length(p.category)), '') FILTER (WHERE p.inside)
                   AS category_len,
               string_agg(int4send(coalesce(p.species_id, 0)), '') FILTER (WHERE p.inside)
                   AS species_id,
               string_agg(p.condition, '') FILTER (WHERE p.inside) AS condition,
               string_agg(int4send(coalesce(octet_length(p.condition), -1)), '')
                   FILTER (WHERE p.inside) AS condition_len,
               string_agg(float4send(coalesce(p.dbh_cm, 'NaN')), '') FILTER (WHERE p.inside)
                   AS dbh_cm
        FROM (
            SELECT q.*,
                   q.tx BETWEEN -32 AND 4096 + 32 AND q.ty BETWEEN -32 AND 4096 + 32 AS inside
            FROM (
                SELECT t.id, t.tree_code, t.category, t.species_id, t.condition, t.dbh_cm,
                       round((ST_X(t.geom) * 20037508.342789244 / 180 - c.west) * c.scale)::integer
                           AS tx,
                       round((c.north - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) * 6378137)
                           * c.scale)::integer AS ty
                FROM smarttrees.trees t
                WHERE t.geom && ST_Transform(ST_TileEnvelope(15, tl.x, tl.y, margin => 0.0078125),
                                             4326)
            ) q
            ORDER BY q.id  -- the aggregates read the trees in id order, as the live statement's
        ) p
    ) a
    WHERE a.placed > 300
    ORDER BY tl.x, tl.y;
CREATE UNIQUE INDEX tree_point_tiles_xy_idx ON smarttrees.tree_point_tiles (x, y);
