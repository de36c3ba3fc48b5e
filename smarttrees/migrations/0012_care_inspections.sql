-- depends: 0007_history_update_diff
-- Tree care (issue 19), part 1: inspections and their ISA TRAQ risk rating, and per tree the
-- latest rating and the date the next inspection is due (smarttrees.care.inspections).
-- The vocabularies are checked here too, so no path can store a rating outside the method.

CREATE TABLE smarttrees.care_inspections (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tree_id                   bigint NOT NULL,   -- no foreign key: the record outlives a deleted tree
    inspected_on              date NOT NULL,
    inspector                 text NOT NULL CHECK (inspector <> ''),
    condition                 text CHECK (condition IN ('good', 'fair', 'poor', 'dead')),
    dbh_cm                    real CHECK (dbh_cm > 0 AND dbh_cm <= 500),
    height_m                  real CHECK (height_m > 0 AND height_m <= 120),
    defects                   text[] NOT NULL DEFAULT '{}' CHECK (defects <@ ARRAY[
                                  'dead_wood', 'crack', 'decay', 'cavity', 'lean', 'weak_union',
                                  'root_damage', 'wire_conflict', 'building_conflict']),
    likelihood_failure        text NOT NULL
                              CHECK (likelihood_failure IN ('improbable', 'possible', 'probable', 'imminent')),
    likelihood_impact         text NOT NULL
                              CHECK (likelihood_impact IN ('very_low', 'low', 'medium', 'high')),
    consequences              text NOT NULL
                              CHECK (consequences IN ('negligible', 'minor', 'significant', 'severe')),
    likelihood_failure_impact text NOT NULL
                              CHECK (likelihood_failure_impact IN ('unlikely', 'somewhat_likely', 'likely', 'very_likely')),
    risk                      text NOT NULL CHECK (risk IN ('low', 'moderate', 'high', 'extreme')),
    photos                    text[] NOT NULL DEFAULT '{}',   -- names or URLs of the photos taken
    note                      text,
    device_id                 text,
    client_event_id           text,
    recorded_by               text,
    recorded_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, client_event_id)       -- an offline batch sent twice is recorded once
);
CREATE INDEX care_inspections_tree_idx ON smarttrees.care_inspections (tree_id, inspected_on);

-- One row per inspected tree: its latest inspection, risk class and next due date. Kept by
-- smarttrees.care.inspections after each batch (set-based) and rebuilt by `smarttrees care
-- refresh` when the inspection cycle setting changes. Commune, category and position are
-- copied from the tree so that the due list and its layer read one table.
CREATE TABLE smarttrees.care_tree_status (
    tree_id            bigint PRIMARY KEY,
    tree_code          text NOT NULL,
    category           text NOT NULL,
    commune_code       text,
    last_inspection_id bigint NOT NULL,
    last_inspected_on  date NOT NULL,
    risk               text NOT NULL,
    defects            text[] NOT NULL,
    next_due           date NOT NULL,
    geom               geometry(Point, 4326) NOT NULL
);
CREATE INDEX care_tree_status_due_idx ON smarttrees.care_tree_status (next_due, tree_id);
CREATE INDEX care_tree_status_commune_idx ON smarttrees.care_tree_status (commune_code, next_due);
CREATE INDEX care_tree_status_risk_idx ON smarttrees.care_tree_status (risk, next_due);
CREATE INDEX care_tree_status_geom_idx ON smarttrees.care_tree_status USING gist (geom);
