-- The trees of the area gathered into the cells of zoom %(level)s (about 1 ha at level 17),
-- each cell as the lon/lat box of its trees: an export's plan (tiles no box reaches are not
-- asked for a trees tile). Cells use the Web Mercator arithmetic of smarttrees.tree_grid (0006).
SELECT min(c.lon), min(c.lat), max(c.lon), max(c.lat)
FROM (
    SELECT ST_X(t.geom) AS lon,
           ST_Y(t.geom) AS lat,
           floor((ST_X(t.geom) + 180) / 360 * (2 ^ %(level)s::integer))::integer AS x,
           floor((1 - ln(tan(pi() / 4 + radians(ST_Y(t.geom)) / 2)) / pi()) / 2
                 * (2 ^ %(level)s::integer))::integer AS y
    FROM smarttrees.trees t
    WHERE t.geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)
) c
GROUP BY c.x, c.y
