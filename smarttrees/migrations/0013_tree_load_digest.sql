-- depends: 0007_history_update_diff
-- Incremental reloads (issue 11): each tree written by a load keeps a 63-bit digest of the file
-- row it came from and of the load's context (etl/digests.py). A reload counts a row whose
-- digest is stored as unchanged without checking or staging it. Any other change to the tree
-- (the API, the field app, SQL) clears the digest, so such a tree is checked and merged again.
-- Columns the mapping does not know are kept per tree in attributes, keyed by the file's own
-- header (issue 11 point 7).
ALTER TABLE smarttrees.trees ADD COLUMN load_digest bigint,
                             ADD COLUMN attributes jsonb;

CREATE FUNCTION smarttrees.forget_load_digest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.load_digest := NULL;
    RETURN NEW;
END $$;

-- A load sets a new digest with its update; an update that leaves the digest as it was is not a
-- load's, and the row it changes no longer matches the digest.
CREATE TRIGGER trees_forget_load_digest BEFORE UPDATE ON smarttrees.trees
    FOR EACH ROW WHEN (OLD.load_digest IS NOT NULL
                       AND NEW.load_digest IS NOT DISTINCT FROM OLD.load_digest)
    EXECUTE FUNCTION smarttrees.forget_load_digest();

-- The history records what a tree is, not how it was last loaded.
CREATE OR REPLACE FUNCTION smarttrees.tree_as_jsonb(t smarttrees.trees) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_jsonb(t) - 'geom' - 'created_at' - 'updated_at' - 'load_digest'
           || jsonb_build_object('lon', round(ST_X(t.geom)::numeric, 7), 'lat', round(ST_Y(t.geom)::numeric, 7))
$$;
