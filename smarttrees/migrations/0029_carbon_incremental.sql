-- depends: 0010_tree_carbon 0019_carbon_in_layers
-- Carbon recomputed for the trees that changed, not the whole province (issue 11).
--
-- The figures of 0010/0019 were materialised views, and a materialised view is only ever
-- recomputed whole: 7 s for the province's 1.13 M trees after a load that changed ten. They
-- become tables with the same names, columns and indexes, filled by smarttrees.carbon from two
-- plain views holding 0010's computations:
--   species_height_fits   the height–diameter model of each species, fitted on today's trees;
--   tree_carbon_computed  each tree's carbon with the models as stored (species_height_models).
-- A refresh after a change of trees deletes and inserts the rows of the trees changed since
-- the stored version (tree_history ids) and adds up again the communes they were and are in;
-- the models are refitted (and every tree recomputed) only when asked or when a species'
-- count of measured trees moved by more than a share (smarttrees.carbon, README "Carbon").
-- carbon_fit_counts keeps those counts as of the last fit, for every species with measured
-- trees (with a model or not), so the rule compares against the fit, not the last load.
-- The readers' views (stand_carbon, commune_carbon, species_carbon) are made again unchanged.

DROP VIEW smarttrees.stand_carbon;
DROP VIEW smarttrees.commune_carbon;
DROP VIEW smarttrees.species_carbon;

CREATE VIEW smarttrees.species_height_fits AS
    SELECT species_id,
           count(*)::integer AS trees,
           regr_intercept(ln(height_m), ln(dbh_cm)) AS a,
           regr_slope(ln(height_m), ln(dbh_cm)) AS b,
           greatest(regr_syy(ln(height_m), ln(dbh_cm))
                    - regr_sxy(ln(height_m), ln(dbh_cm)) ^ 2 / regr_sxx(ln(height_m), ln(dbh_cm)),
                    0) / (count(*) - 2) AS rse2,
           min(dbh_cm)::float8 AS dbh_min_cm,
           max(dbh_cm)::float8 AS dbh_max_cm
    FROM smarttrees.trees
    WHERE species_id IS NOT NULL AND dbh_cm IS NOT NULL AND height_m IS NOT NULL
      AND condition IS DISTINCT FROM 'removed'
    GROUP BY species_id
    HAVING count(*) >= 20 AND regr_sxx(ln(height_m), ln(dbh_cm)) > 0;

-- Each materialised view becomes a table of the same columns, keeping its rows when it had
-- any (a database migrated before its first refresh has none to keep).
CREATE FUNCTION pg_temp.to_table(name text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    populated boolean;
BEGIN
    SELECT relispopulated INTO populated FROM pg_class
    WHERE oid = format('smarttrees.%I', name)::regclass;
    EXECUTE format('CREATE TABLE smarttrees.%I (LIKE smarttrees.%I)', name || '_new', name);
    IF populated THEN
        EXECUTE format('INSERT INTO smarttrees.%I SELECT * FROM smarttrees.%I', name || '_new', name);
    END IF;
END $$;

DO $$ BEGIN
    PERFORM pg_temp.to_table('tree_carbon_version');
    PERFORM pg_temp.to_table('tree_carbon_by_commune');
    PERFORM pg_temp.to_table('tree_carbon');
    PERFORM pg_temp.to_table('species_height_models');
END $$;
DROP MATERIALIZED VIEW smarttrees.tree_carbon_version;
DROP MATERIALIZED VIEW smarttrees.tree_carbon_by_commune;
DROP MATERIALIZED VIEW smarttrees.tree_carbon;
DROP MATERIALIZED VIEW smarttrees.species_height_models;
ALTER TABLE smarttrees.tree_carbon_version_new RENAME TO tree_carbon_version;
ALTER TABLE smarttrees.tree_carbon_by_commune_new RENAME TO tree_carbon_by_commune;
ALTER TABLE smarttrees.tree_carbon_new RENAME TO tree_carbon;
ALTER TABLE smarttrees.species_height_models_new RENAME TO species_height_models;

CREATE UNIQUE INDEX species_height_models_idx ON smarttrees.species_height_models (species_id);
CREATE UNIQUE INDEX tree_carbon_tree_idx ON smarttrees.tree_carbon (tree_id);
CREATE INDEX tree_carbon_commune_idx ON smarttrees.tree_carbon (commune_code);
CREATE INDEX tree_carbon_stand_idx ON smarttrees.tree_carbon (stand_id) WHERE stand_id IS NOT NULL;
CREATE UNIQUE INDEX tree_carbon_by_commune_code ON smarttrees.tree_carbon_by_commune (commune_code);

CREATE TABLE smarttrees.carbon_fit_counts (
    species_id integer PRIMARY KEY,
    measured   integer NOT NULL    -- trees with diameter and height, not removed, at the fit
);
INSERT INTO smarttrees.carbon_fit_counts
    SELECT species_id, count(*) FROM smarttrees.trees
    WHERE species_id IS NOT NULL AND dbh_cm IS NOT NULL AND height_m IS NOT NULL
      AND condition IS DISTINCT FROM 'removed'
    GROUP BY species_id;

-- 0010's computation of one tree's carbon, now over the stored models.
CREATE VIEW smarttrees.tree_carbon_computed AS
    SELECT t.id AS tree_id,
           t.tree_code,
           t.category,
           t.species_id,
           t.commune_code,
           t.stand_id,
           t.dbh_cm::float8 AS dbh_cm,
           s.wood_density::float8 AS wood_density,
           h.height_m,
           h.height_source,
           e.equation,
           (CASE
                WHEN e.equation IS NULL THEN NULL
                WHEN e.equation = 'chave2014_eq4' THEN t.dbh_cm < 5 OR h.height_source = 'hd_model'
                    AND (t.dbh_cm < m.dbh_min_cm OR t.dbh_cm > m.dbh_max_cm)
                WHEN e.equation = 'chave2014_eq7' THEN t.dbh_cm < 5
                ELSE t.dbh_cm < q.dbh_min_cm OR t.dbh_cm > q.dbh_max_cm
            END) AS outside_range,
           a.agb_kg,
           a.agb_kg * p.carbon_fraction AS carbon_kg,
           a.agb_kg * p.carbon_fraction * 44.0 / 12.0 AS co2e_kg
    FROM smarttrees.trees t
    CROSS JOIN smarttrees.carbon_parameters p
    LEFT JOIN smarttrees.species s ON s.id = t.species_id
    LEFT JOIN smarttrees.allometric_equations q ON q.species_id = t.species_id
    LEFT JOIN smarttrees.species_height_models m ON m.species_id = t.species_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN t.height_m IS NOT NULL THEN t.height_m::float8
                    WHEN m.species_id IS NOT NULL AND t.dbh_cm IS NOT NULL
                        THEN exp(m.a + m.b * ln(t.dbh_cm) + m.rse2 / 2)
               END AS height_m,
               CASE WHEN t.height_m IS NOT NULL THEN 'measured'
                    WHEN m.species_id IS NOT NULL AND t.dbh_cm IS NOT NULL THEN 'hd_model'
               END AS height_source
    ) h
    CROSS JOIN LATERAL (
        SELECT CASE
                   WHEN t.dbh_cm IS NULL OR t.condition = 'removed' THEN NULL
                   WHEN q.form = 'a*D^b' THEN q.name
                   WHEN q.form = 'a*(D^2*H)^b' AND h.height_m IS NOT NULL THEN q.name
                   WHEN s.wood_density IS NULL THEN NULL
                   WHEN h.height_m IS NOT NULL THEN 'chave2014_eq4'
                   ELSE 'chave2014_eq7'
               END AS equation
    ) e
    CROSS JOIN LATERAL (
        SELECT CASE
                   WHEN e.equation IS NULL THEN NULL
                   WHEN e.equation = 'chave2014_eq4'
                       THEN 0.0673 * (s.wood_density * t.dbh_cm ^ 2 * h.height_m) ^ 0.976
                   WHEN e.equation = 'chave2014_eq7'
                       THEN exp(-1.803 - 0.976 * p.chave_e + 0.976 * ln(s.wood_density)
                                + 2.673 * ln(t.dbh_cm) - 0.0299 * ln(t.dbh_cm) ^ 2)
                   WHEN q.form = 'a*D^b' THEN q.a * t.dbh_cm ^ q.b
                   ELSE q.a * (t.dbh_cm ^ 2 * h.height_m) ^ q.b
               END::float8 AS agb_kg
    ) a;

-- 0019's sums per commune, for the communes given ('' for trees without one).
CREATE VIEW smarttrees.tree_carbon_sums AS
    SELECT coalesce(commune_code, '') AS commune_code,
           count(*) AS trees, count(equation) AS estimated,
           sum(agb_kg) / 1000 AS agb_t, sum(carbon_kg) / 1000 AS carbon_t,
           sum(co2e_kg) / 1000 AS co2e_t
    FROM smarttrees.tree_carbon GROUP BY 1;

-- The readers' views, as 0010 and 0019 left them.
CREATE VIEW smarttrees.stand_carbon AS
    WITH measured AS (
        SELECT stand_id, count(*) AS trees, count(equation) AS estimated,
               sum(agb_kg) AS agb_kg, sum(carbon_kg) AS carbon_kg, sum(co2e_kg) AS co2e_kg
        FROM smarttrees.tree_carbon
        WHERE stand_id IS NOT NULL
        GROUP BY stand_id
    ), mean_tree AS (
        SELECT st.species_id, st.planting_year,
               sum(m.carbon_kg) / nullif(sum(m.estimated), 0) AS carbon_kg,
               sum(m.agb_kg) / nullif(sum(m.estimated), 0) AS agb_kg
        FROM measured m JOIN smarttrees.stands st ON st.id = m.stand_id
        GROUP BY st.species_id, st.planting_year
    )
    SELECT st.id AS stand_id,
           st.stand_code,
           st.species_id,
           st.planting_year,
           st.area_ha::float8 AS area_ha,
           st.planted_count,
           st.commune_code,
           CASE WHEN m.stand_id IS NOT NULL THEN 'inventoried trees'
                WHEN mt.carbon_kg IS NOT NULL AND st.planted_count IS NOT NULL
                    THEN 'planted count × mean tree of the same species and year'
           END AS method,
           coalesce(m.trees, 0) AS trees,
           coalesce(m.agb_kg, st.planted_count * mt.agb_kg) / 1000 AS agb_t,
           coalesce(m.carbon_kg, st.planted_count * mt.carbon_kg) / 1000 AS carbon_t,
           coalesce(m.carbon_kg, st.planted_count * mt.carbon_kg) / 1000 * 44.0 / 12.0 AS co2e_t,
           coalesce(m.carbon_kg, st.planted_count * mt.carbon_kg) / 1000
               / st.area_ha::float8 AS carbon_t_per_ha,
           st.geom
    FROM smarttrees.stands st
    LEFT JOIN measured m ON m.stand_id = st.id
    LEFT JOIN mean_tree mt ON mt.species_id = st.species_id AND mt.planting_year = st.planting_year;

CREATE VIEW smarttrees.commune_carbon AS
    SELECT c.code AS commune_code, c.name AS commune_name,
           coalesce(a.trees, 0) AS trees, coalesce(a.estimated, 0) AS estimated,
           a.agb_t, a.carbon_t, a.co2e_t, c.geom
    FROM smarttrees.communes c
    LEFT JOIN smarttrees.tree_carbon_by_commune a ON a.commune_code = c.code;

CREATE VIEW smarttrees.species_carbon AS
    SELECT t.species_id, s.scientific_name AS species_name, s.vietnamese_name AS species_vi,
           count(*) AS trees, count(t.equation) AS estimated,
           sum(t.agb_kg) / 1000 AS agb_t, sum(t.carbon_kg) / 1000 AS carbon_t,
           sum(t.co2e_kg) / 1000 AS co2e_t,
           avg(t.carbon_kg) AS mean_carbon_kg
    FROM smarttrees.tree_carbon t LEFT JOIN smarttrees.species s ON s.id = t.species_id
    GROUP BY t.species_id, s.scientific_name, s.vietnamese_name;
