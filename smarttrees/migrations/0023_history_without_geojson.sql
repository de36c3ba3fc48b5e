-- depends: 0013_tree_load_digest
-- The history's form of a tree (issue 11): to_jsonb of the whole row also turned its geometry
-- into GeoJSON through PostGIS's geometry-to-json cast (with a spatial_ref_sys query per row),
-- only for the key to be removed again: 0.2-0.5 ms a tree, twice per updated tree, 4.5 s of
-- the 5 s an UPDATE of 11,300 trees took. The geometry is set aside before to_jsonb; the
-- object is the same (every column but geom, created_at, updated_at and load_digest, plus the
-- position as lon/lat rounded to 7 decimals), and new columns still appear in it by themselves.
CREATE OR REPLACE FUNCTION smarttrees.tree_as_jsonb(t smarttrees.trees) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    position jsonb := jsonb_build_object('lon', round(ST_X(t.geom)::numeric, 7),
                                         'lat', round(ST_Y(t.geom)::numeric, 7));
BEGIN
    t.geom := NULL;
    RETURN to_jsonb(t) - 'geom' - 'created_at' - 'updated_at' - 'load_digest' || position;
END $$;
