-- The trees' data version: the newest tree_history id, which every insert, update or delete
-- of a tree advances. Tiles of versioned collections are cached under it.
SELECT coalesce(max(id), 0) FROM smarttrees.tree_history
