-- depends: 0014_territory
-- The territory rule held by the database itself: a tree, stand or nursery written by any path
-- (the API's OGC Part 4 writes, QGIS editing PostGIS directly, psql) must lie in the territory.
-- Checked once per statement over its transition table (set-based, as the history triggers
-- are) against the outline prepared once (an InitPlan value, the same in every row). A stand counts by a point on its surface.
-- With no territory set nothing is refused here: the loaders refuse first, saying how to set
-- one, and an empty deployment stays editable.

CREATE FUNCTION smarttrees.raise_outside_territory(bad text, area text, tbl text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'geometry: % is outside the territory (%)', bad, area
            USING ERRCODE = 'check_violation', TABLE = tbl, COLUMN = 'geom',
                  HINT = 'the territory is set with smarttrees load territory or load admin';
    END IF;
END
$$;

-- Inserted rows: every one is checked.
CREATE FUNCTION smarttrees.refuse_outside_territory() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad  text;
    area text;
BEGIN
    SELECT name INTO area FROM smarttrees.territory;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT ST_AsText(ST_PointOnSurface(n.geom), 6) INTO bad
    FROM new_rows n
    WHERE NOT ST_IsEmpty(n.geom)  -- an empty geometry (a stand without its polygon) is nowhere
      AND NOT ST_Intersects((SELECT geom FROM smarttrees.territory), ST_PointOnSurface(n.geom))
    LIMIT 1;
    PERFORM smarttrees.raise_outside_territory(bad, area, TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- Updated rows: only those whose geometry moved, so that a boundary reform (which reassigns
-- every tree's commune) never fails on trees that stayed where they were.
CREATE FUNCTION smarttrees.refuse_moved_outside_territory() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad  text;
    area text;
BEGIN
    SELECT name INTO area FROM smarttrees.territory;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT ST_AsText(ST_PointOnSurface(n.geom), 6) INTO bad
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE NOT ST_OrderingEquals(o.geom, n.geom)
      AND NOT ST_IsEmpty(n.geom)
      AND NOT ST_Intersects((SELECT geom FROM smarttrees.territory), ST_PointOnSurface(n.geom))
    LIMIT 1;
    PERFORM smarttrees.raise_outside_territory(bad, area, TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER trees_in_territory_insert AFTER INSERT ON smarttrees.trees
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_outside_territory();
CREATE TRIGGER trees_in_territory_update AFTER UPDATE ON smarttrees.trees
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_moved_outside_territory();
CREATE TRIGGER stands_in_territory_insert AFTER INSERT ON smarttrees.stands
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_outside_territory();
CREATE TRIGGER stands_in_territory_update AFTER UPDATE ON smarttrees.stands
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_moved_outside_territory();
CREATE TRIGGER nurseries_in_territory_insert AFTER INSERT ON smarttrees.nurseries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_outside_territory();
CREATE TRIGGER nurseries_in_territory_update AFTER UPDATE ON smarttrees.nurseries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refuse_moved_outside_territory();
