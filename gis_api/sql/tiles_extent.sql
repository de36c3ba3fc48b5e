-- The lon/lat bounds of a tiled collection's table or view (exact: reads every geometry).
SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (SELECT ST_Extent(geom) FROM smarttrees.{table}) e(b)
