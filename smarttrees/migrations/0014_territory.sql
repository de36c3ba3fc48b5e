-- depends: 0001_core
-- The territory a deployment covers is data (issue 12): an explicitly loaded boundary when one
-- is in force, else the union of the administrative units in force. Every inside-the-territory
-- check (loaders, seed data, scans, API writes) tests the one stored outline, prepared by PostGIS
-- once per statement (GEOS builds an index of its edges): about 2 µs a point, against 17-30 µs
-- for GiST probes into a subdivided outline (bench/bench_territory.py). See
-- smarttrees/territory.py.

-- Unit codes follow the deployment's scheme (SMARTTREES_UNIT_CODE_PATTERN, digits by default,
-- checked by the loader); the database keeps only the outer bound of a short code.
ALTER TABLE smarttrees.admin_units DROP CONSTRAINT admin_units_code_check;
ALTER TABLE smarttrees.admin_units
    ADD CONSTRAINT admin_units_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$');

-- Boundaries loaded by `smarttrees load territory`; a new one replaces (never deletes) the last.
CREATE TABLE smarttrees.territory_boundaries (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    source      text,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    replaced_at timestamptz,
    geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))
);
CREATE UNIQUE INDEX territory_boundaries_in_force_idx
    ON smarttrees.territory_boundaries ((true)) WHERE replaced_at IS NULL;

-- The territory in force, derived: one row (or none: no territory set).
CREATE TABLE smarttrees.territory (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    name         text NOT NULL,
    origin       text NOT NULL CHECK (origin IN ('boundary', 'admin_units')),
    units        integer NOT NULL,           -- polygons or units it was made of
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    geom         geometry(MultiPolygon, 4326) NOT NULL
);

CREATE FUNCTION smarttrees.refresh_territory() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b smarttrees.territory_boundaries;
    n integer;
    province text;
BEGIN
    DELETE FROM smarttrees.territory;
    SELECT * INTO b FROM smarttrees.territory_boundaries WHERE replaced_at IS NULL;
    IF FOUND THEN
        INSERT INTO smarttrees.territory (name, origin, units, geom)
        VALUES (b.name, 'boundary', ST_NumGeometries(b.geom), b.geom);
    ELSE
        SELECT count(*) INTO n FROM smarttrees.admin_units
        WHERE valid_to IS NULL AND geom IS NOT NULL;
        IF n = 0 THEN
            RETURN;
        END IF;
        -- The one province in force names the territory; otherwise its units do.
        SELECT CASE WHEN count(*) = 1 THEN min(name) END INTO province
        FROM smarttrees.admin_units WHERE valid_to IS NULL AND level = 'province';
        INSERT INTO smarttrees.territory (name, origin, units, geom)
        SELECT coalesce(province, n || ' administrative units in force'), 'admin_units', n,
               ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(geom)), 3))
        FROM smarttrees.admin_units WHERE valid_to IS NULL AND geom IS NOT NULL;
    END IF;
END
$$;

CREATE FUNCTION smarttrees.refresh_territory_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM smarttrees.refresh_territory();
    RETURN NULL;
END
$$;

-- Statement-level: a load of 3,000 units refreshes once. Renames (name_ascii) do not refresh.
CREATE TRIGGER admin_units_territory
    AFTER INSERT OR DELETE OR UPDATE OF level, valid_to, geom ON smarttrees.admin_units
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refresh_territory_trigger();
CREATE TRIGGER admin_units_territory_truncate AFTER TRUNCATE ON smarttrees.admin_units
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refresh_territory_trigger();
CREATE TRIGGER territory_boundaries_refresh
    AFTER INSERT OR DELETE OR UPDATE ON smarttrees.territory_boundaries
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.refresh_territory_trigger();

-- Whether a WGS 84 point lies in the territory (false when none is set; the loaders refuse to
-- run without one before they get here). NULL coordinates: NULL.
-- For a few points (scans, agencies): a query over many rows writes the test inline
-- (smarttrees.territory.sql_inside), where PostGIS prepares the outline once per statement.
CREATE FUNCTION smarttrees.in_territory(lon float8, lat float8) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN lon IS NULL OR lat IS NULL THEN NULL ELSE coalesce(ST_Intersects(
        (SELECT geom FROM smarttrees.territory), ST_SetSRID(ST_MakePoint(lon, lat), 4326)),
        false) END
$$;

DO $$ BEGIN PERFORM smarttrees.refresh_territory(); END $$;
