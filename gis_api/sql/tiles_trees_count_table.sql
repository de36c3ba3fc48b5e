-- How many trees a tile holds, added up from the level-17 cells of smarttrees.tree_grid
-- (migration 0006): cells i in [i0, i1) and j in [j0, j1), as tiles_trees_grid_table.sql.
-- A point-zoom tile over the feature cap by this count is over it with its edge buffer too,
-- so its grid counts are made at once, without picking (cap + 1) trees first.
SELECT coalesce(sum(g.n), 0)
FROM smarttrees.tree_grid g
WHERE g.i >= %(i0)s::integer AND g.i < %(i1)s::integer
  AND g.j >= %(j0)s::integer AND g.j < %(j1)s::integer
  {filters}
