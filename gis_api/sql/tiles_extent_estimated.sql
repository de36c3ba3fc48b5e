-- The lon/lat bounds of a tiled table from the planner's statistics (no scan of a million
-- rows); raises when the table has never been analysed, and the caller then asks for the
-- exact extent (tiles_extent.sql).
SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (SELECT ST_EstimatedExtent('smarttrees', %(table)s, 'geom')::box2d) e(b)
