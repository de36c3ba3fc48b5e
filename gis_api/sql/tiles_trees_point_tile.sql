-- A zoom-15 trees tile's points read from smarttrees.tree_point_tiles (migration 0035): the
-- columns of tiles_trees_points.sql (after its "grid" and "small"), already picked, placed and
-- packed per tile, with the tile's species names read here as that statement reads them (by
-- id). No row when the view does not hold the tile (300 trees or fewer) or it holds more trees
-- than the cap: the tile is then rendered from the trees.
SELECT tt.ids, tt.px, tt.py, tt.tree_code, tt.tree_code_len, tt.category, tt.category_len,
       tt.species_id, tt.condition, tt.condition_len, tt.dbh_cm,
       s.ids, s.scientific, s.scientific_len, s.vietnamese, s.vietnamese_len
FROM smarttrees.tree_point_tiles tt
CROSS JOIN LATERAL (
    SELECT string_agg(int4send(s.id), '' ORDER BY s.id) AS ids,
           string_agg(s.scientific_name, '' ORDER BY s.id) AS scientific,
           string_agg(int4send(coalesce(octet_length(s.scientific_name), -1)), '' ORDER BY s.id)
               AS scientific_len,
           string_agg(s.vietnamese_name, '' ORDER BY s.id) AS vietnamese,
           string_agg(int4send(coalesce(octet_length(s.vietnamese_name), -1)), '' ORDER BY s.id)
               AS vietnamese_len
    FROM smarttrees.species s
    WHERE s.id = ANY (tt.species)
) s
WHERE tt.x = %(x)s AND tt.y = %(y)s
  AND tt.picked <= %(limit)s AND tt.placed > %(small)s
