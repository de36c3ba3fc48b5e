-- depends: 0001_core
-- db.history(since=…) (issue 14): the changes after a time, oldest first. Without an index on
-- changed_at that is a scan and a sort of the whole history (a row per tree after the first
-- load, and one per change since). Ordered as the reader asks (changed_at, id), the index gives
-- the rows already sorted; history rows are only appended, so it stays compact.
CREATE INDEX tree_history_changed_idx ON smarttrees.tree_history (changed_at, id);
