-- depends: 0006_tree_grid
-- The update history trigger of 0001 compared each changed tree field by field on jsonb forms
-- of its old and new rows. The planner inlined those forms into every use, so each row's jsonb
-- (geometry included) was rebuilt some fifty times: 1.8 ms per updated tree, 20 s for a survey
-- changing 11,300 trees. Here each form is built once per row (OFFSET 0 keeps the subquery
-- from being flattened); the rows written are the same.
CREATE OR REPLACE FUNCTION smarttrees.record_tree_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
