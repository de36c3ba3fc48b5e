-- The tree data version smarttrees.tree_grid was last computed at (migration 0006).
SELECT version FROM smarttrees.tree_grid_version
