-- depends: 0023_history_without_geojson
-- A resubmitted survey's changed trees (issue 11): the loader writes their history rows itself,
-- in the same statement as the UPDATE, from the columns it compared (etl/merge.py). The update
-- trigger then has nothing to add; building both jsonb forms of every updated tree cost it
-- 0.8-1.8 s for 11,300 trees, the loader's insert 0.1 s. It says so for that one statement by
-- setting smarttrees.history_written_by to its own transaction id (transaction-local, cleared
-- after the statement); every other UPDATE is recorded by this trigger as before.
CREATE OR REPLACE FUNCTION smarttrees.record_tree_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('smarttrees.history_written_by', true) = txid_current()::text THEN
        RETURN NULL;
    END IF;
    INSERT INTO smarttrees.tree_history (tree_id, tree_code, change, actor, source, changes)
    SELECT p.id, p.tree_code, 'update', current_setting('smarttrees.actor', true),
           coalesce(nullif(current_setting('smarttrees.source', true), ''), p.source), d.changes
    FROM (
        SELECT n.id, n.tree_code, n.source,
               smarttrees.tree_as_jsonb(n) AS nj, smarttrees.tree_as_jsonb(o) AS oj
        FROM new_rows n JOIN old_rows o USING (id)
        OFFSET 0
    ) p
    CROSS JOIN LATERAL (
        SELECT jsonb_object_agg(k.key, jsonb_build_object('old', p.oj -> k.key, 'new', p.nj -> k.key))
               AS changes
        FROM jsonb_object_keys(p.nj) AS k(key)
        WHERE p.nj -> k.key IS DISTINCT FROM p.oj -> k.key
    ) d
    WHERE d.changes IS NOT NULL;
    RETURN NULL;
END $$;
