-- How many trees (up to a cap) one tile would carry: decides between points and the grid.
-- The tile envelope is transformed to 4326 once so the GIST index on trees.geom does the work.
SELECT count(*)
FROM (
    SELECT 1
    FROM smarttrees.trees t
    WHERE t.geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)
      {filters}
    LIMIT %(limit)s
) capped
