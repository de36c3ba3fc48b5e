-- depends: 0012_care_storms
-- The data version of the tree-care tile layers (gis_api/sql/tiles_care_version.sql): one
-- counter advanced by every statement that writes the trees' risk and due dates or the storm
-- damage. It is a row, not a sequence, so the new version becomes visible with the data it
-- stands for, at commit: a tile read meanwhile is cached under the old version.
CREATE TABLE smarttrees.care_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL DEFAULT 0
);
INSERT INTO smarttrees.care_version DEFAULT VALUES;

CREATE FUNCTION smarttrees.advance_care_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smarttrees.care_version SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER care_tree_status_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON smarttrees.care_tree_status
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.advance_care_version();
CREATE TRIGGER care_damage_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON smarttrees.care_damage
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.advance_care_version();
