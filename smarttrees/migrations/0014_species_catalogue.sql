-- depends: 0001_core
-- The species catalogue is data a deployment loads (`smarttrees load species FILE`, issue 12):
-- merged by scientific name, every change kept in species_history (as tree_history does for
-- trees), and each wood density says at which level it was found.

-- given: in the loaded file; species/genus/family: the Global Wood Density Database's mean of
-- that taxon (filled by the loader); NULL: not known.
ALTER TABLE smarttrees.species
    ADD COLUMN wood_density_level text
        CHECK (wood_density_level IN ('given', 'species', 'genus', 'family'));
UPDATE smarttrees.species SET wood_density_level = CASE
    WHEN wood_density IS NULL THEN NULL
    WHEN wood_density_source ILIKE '%genus%' THEN 'genus'
    WHEN wood_density_source ILIKE '%family%' THEN 'family'
    WHEN wood_density_source ILIKE '%species%' THEN 'species'
    ELSE 'given' END;

CREATE TABLE smarttrees.species_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    species_id integer NOT NULL,             -- no foreign key: history outlives the row
    scientific_name text NOT NULL,
    change     text NOT NULL CHECK (change IN ('insert', 'update', 'delete')),
    changed_at timestamptz NOT NULL DEFAULT now(),
    actor      text,
    source     text,
    changes    jsonb                         -- update: {field: {old, new}}; delete: the old row
);
CREATE INDEX species_history_species_idx ON smarttrees.species_history (species_id, changed_at);

CREATE FUNCTION smarttrees.record_species_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smarttrees.species_history (species_id, scientific_name, change, actor, source)
        SELECT n.id, n.scientific_name, 'insert', current_setting('smarttrees.actor', true),
               current_setting('smarttrees.source', true)
        FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO smarttrees.species_history
            (species_id, scientific_name, change, actor, source, changes)
        SELECT n.id, n.scientific_name, 'update', current_setting('smarttrees.actor', true),
               current_setting('smarttrees.source', true),
               (SELECT jsonb_object_agg(k, jsonb_build_object('old', to_jsonb(o) -> k,
                                                              'new', to_jsonb(n) -> k))
                FROM jsonb_object_keys(to_jsonb(n)) k
                WHERE to_jsonb(o) -> k IS DISTINCT FROM to_jsonb(n) -> k)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE to_jsonb(o) IS DISTINCT FROM to_jsonb(n);
    ELSE
        INSERT INTO smarttrees.species_history
            (species_id, scientific_name, change, actor, source, changes)
        SELECT o.id, o.scientific_name, 'delete', current_setting('smarttrees.actor', true),
               current_setting('smarttrees.source', true), to_jsonb(o)
        FROM old_rows o;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER species_history_insert AFTER INSERT ON smarttrees.species
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.record_species_changes();
CREATE TRIGGER species_history_update AFTER UPDATE ON smarttrees.species
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.record_species_changes();
CREATE TRIGGER species_history_delete AFTER DELETE ON smarttrees.species
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.record_species_changes();
