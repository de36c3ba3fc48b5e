-- The IOC layers' data version (advanced by every IOC load and refresh, migration 0017) and
-- the trees' (the tree layer follows the trees): tiles of the IOC collections are cached under
-- both.
SELECT (SELECT version FROM smarttrees.ioc_version),
       (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history)
