-- The tree-care layers' data version (advanced by every write to care_tree_status or
-- care_damage, migration 0012_care_tile_version): their tiles are cached under it.
SELECT version FROM smarttrees.care_version
