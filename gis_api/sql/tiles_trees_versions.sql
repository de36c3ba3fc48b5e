-- The trees' data version and the version smarttrees.tree_grid was computed at, in one
-- statement (tiles_trees_version.sql and tiles_grid_version.sql): a trees tile's cache key,
-- and whether its low-zoom counts may come from the grid, for one round trip.
SELECT (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history),
       (SELECT version FROM smarttrees.tree_grid_version)
