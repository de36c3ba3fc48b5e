-- depends: 0001_core
-- Above-ground biomass and carbon of every tree, computed in SQL (see README "Carbon").
--
-- Per tree, the first equation that applies:
--   1. a species-specific equation of smarttrees.allometric_equations (none shipped: a row is
--      added once its coefficients are checked against the publication);
--   2. Chave et al. 2014, eq. 4: AGB = 0.0673 × (ρ D² H)^0.976 with the measured height, or with
--      the height predicted by the species' height–diameter model fitted on the inventory's own
--      measured trees (log–log, as BIOMASS::modelHD "log1": H = exp(a + b ln D + RSE²/2));
--   3. Chave et al. 2014, eq. 7 (no height): AGB = exp(−1.803 − 0.976 E + 0.976 ln ρ
--      + 2.673 ln D − 0.0299 (ln D)²), with the environmental-stress term E a setting.
-- AGB in kg, D (dbh) in cm, H in m, ρ (wood density) in g/cm³. Removed trees and trees without
-- a diameter or a wood density get no estimate (equation NULL).
-- smarttrees.carbon.refresh() writes the settings (carbon fraction, E) into carbon_parameters
-- and refreshes the materialised views when their inputs changed; the defaults below hold
-- until then.

CREATE TABLE smarttrees.carbon_parameters (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    carbon_fraction double precision NOT NULL CHECK (carbon_fraction > 0 AND carbon_fraction <= 1),
    chave_e         double precision NOT NULL CHECK (chave_e BETWEEN -3 AND 3),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO smarttrees.carbon_parameters (carbon_fraction, chave_e) VALUES (0.47, 0);

-- Published species-specific equations, e.g. AGB = a × D^b for Acacia hybrid plantations.
CREATE TABLE smarttrees.allometric_equations (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    species_id  integer NOT NULL UNIQUE REFERENCES smarttrees.species ON DELETE CASCADE,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9_]+$'),  -- recorded per tree
    form        text NOT NULL CHECK (form IN ('a*D^b', 'a*(D^2*H)^b')),
    a           double precision NOT NULL CHECK (a > 0),
    b           double precision NOT NULL,
    dbh_min_cm  real NOT NULL CHECK (dbh_min_cm > 0),   -- validity range of the sample trees
    dbh_max_cm  real NOT NULL CHECK (dbh_max_cm > dbh_min_cm),
    source      text NOT NULL                           -- citation
);

-- Height–diameter model per species: ln H = a + b ln D on trees with both measured, when a
-- species has at least 20 of them spanning more than one diameter.
CREATE MATERIALIZED VIEW smarttrees.species_height_models AS
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
    HAVING count(*) >= 20 AND regr_sxx(ln(height_m), ln(dbh_cm)) > 0
    WITH DATA;
CREATE UNIQUE INDEX species_height_models_idx ON smarttrees.species_height_models (species_id);

CREATE MATERIALIZED VIEW smarttrees.tree_carbon AS
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
    ) a
    WITH DATA;
CREATE UNIQUE INDEX tree_carbon_tree_idx ON smarttrees.tree_carbon (tree_id);
CREATE INDEX tree_carbon_commune_idx ON smarttrees.tree_carbon (commune_code);
CREATE INDEX tree_carbon_stand_idx ON smarttrees.tree_carbon (stand_id) WHERE stand_id IS NOT NULL;

-- What tree_carbon was computed from: the trees' data version (newest tree_history id), the
-- parameters, and digests of the equations and wood densities. Stale when any differs.
CREATE VIEW smarttrees.carbon_inputs AS
    SELECT (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history) AS tree_version,
           p.carbon_fraction,
           p.chave_e,
           (SELECT md5(coalesce(string_agg(q::text, ',' ORDER BY q.id), ''))
            FROM smarttrees.allometric_equations q) AS equations,
           (SELECT md5(coalesce(string_agg(s.id || ':' || coalesce(s.wood_density::text, ''), ','
                                           ORDER BY s.id), ''))
            FROM smarttrees.species s) AS wood_densities
    FROM smarttrees.carbon_parameters p;
CREATE MATERIALIZED VIEW smarttrees.tree_carbon_version AS
    SELECT * FROM smarttrees.carbon_inputs
    WITH DATA;

-- Per stand: from its inventoried trees; a stand with none is estimated as its planted count
-- times the mean tree of inventoried stands of the same species planted the same year.
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

-- Per commune (in force today) and per species: sums over the trees with an estimate.
CREATE VIEW smarttrees.commune_carbon AS
    SELECT c.code AS commune_code, c.name AS commune_name,
           coalesce(a.trees, 0) AS trees, coalesce(a.estimated, 0) AS estimated,
           a.agb_t, a.carbon_t, a.co2e_t, c.geom
    FROM smarttrees.communes c
    LEFT JOIN (
        SELECT commune_code, count(*) AS trees, count(equation) AS estimated,
               sum(agb_kg) / 1000 AS agb_t, sum(carbon_kg) / 1000 AS carbon_t,
               sum(co2e_kg) / 1000 AS co2e_t
        FROM smarttrees.tree_carbon GROUP BY commune_code
    ) a ON a.commune_code = c.code;

CREATE VIEW smarttrees.species_carbon AS
    SELECT t.species_id, s.scientific_name AS species_name, s.vietnamese_name AS species_vi,
           count(*) AS trees, count(t.equation) AS estimated,
           sum(t.agb_kg) / 1000 AS agb_t, sum(t.carbon_kg) / 1000 AS carbon_t,
           sum(t.co2e_kg) / 1000 AS co2e_t,
           avg(t.carbon_kg) AS mean_carbon_kg
    FROM smarttrees.tree_carbon t LEFT JOIN smarttrees.species s ON s.id = t.species_id
    GROUP BY t.species_id, s.scientific_name, s.vietnamese_name;
