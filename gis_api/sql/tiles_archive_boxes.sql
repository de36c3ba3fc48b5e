-- The lon/lat bounding box of every feature of a tiled table in the area (an export's plan:
-- tiles no feature's box reaches are not asked for that collection's tile).
SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
FROM (
    SELECT Box2D(geom) AS b
    FROM smarttrees.{table}
    WHERE geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)
) f
