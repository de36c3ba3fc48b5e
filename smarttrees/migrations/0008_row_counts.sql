-- depends: 0007_history_update_diff
-- Row counts kept by statement-level triggers, so that an unfiltered page of trees can say
-- numberMatched exactly (QGIS shows it as the layer's feature count) without counting a
-- million rows on each request. One UPDATE per statement (a batch of a load is one), from the
-- statement's transition table; TRUNCATE (the bulk loader's empty start) sets the count to 0.
CREATE TABLE smarttrees.row_counts (
    table_name text PRIMARY KEY,
    n          bigint NOT NULL CHECK (n >= 0)
);
INSERT INTO smarttrees.row_counts (table_name, n) SELECT 'trees', count(*) FROM smarttrees.trees;

CREATE FUNCTION smarttrees.count_inserted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smarttrees.row_counts SET n = n + (SELECT count(*) FROM new_rows)
    WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;

CREATE FUNCTION smarttrees.count_deleted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smarttrees.row_counts SET n = n - (SELECT count(*) FROM old_rows)
    WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;

CREATE FUNCTION smarttrees.count_truncated_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE smarttrees.row_counts SET n = 0 WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;

CREATE TRIGGER trees_count_insert AFTER INSERT ON smarttrees.trees
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION smarttrees.count_inserted_rows();
CREATE TRIGGER trees_count_delete AFTER DELETE ON smarttrees.trees
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION smarttrees.count_deleted_rows();
CREATE TRIGGER trees_count_truncate AFTER TRUNCATE ON smarttrees.trees
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.count_truncated_rows();
