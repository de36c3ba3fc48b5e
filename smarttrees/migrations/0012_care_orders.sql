-- depends: 0012_care_inspections
-- Tree care (issue 19), part 2: work orders from request to done, the trees each names, every
-- transition with who and when, and the price catalogue (VND) estimates come from. The
-- catalogue is reference data, loaded by `smarttrees care prices load` (smarttrees.care.prices).

CREATE TABLE smarttrees.care_prices (
    work_type   text NOT NULL CHECK (work_type IN ('pruning', 'removal', 'planting',
                    'stump_removal', 'staking', 'watering', 'cabling')),
    dbh_min_cm  real NOT NULL DEFAULT 0 CHECK (dbh_min_cm >= 0),   -- the band a tree's dbh falls in
    dbh_max_cm  real CHECK (dbh_max_cm > dbh_min_cm),               -- NULL: no upper bound
    price_vnd   bigint NOT NULL CHECK (price_vnd >= 0),             -- per tree (per spot: planting)
    description text,
    PRIMARY KEY (work_type, dbh_min_cm)
);

CREATE TABLE smarttrees.care_work_orders (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_type          text NOT NULL CHECK (work_type IN ('pruning', 'removal', 'planting',
                           'stump_removal', 'staking', 'watering', 'cabling')),
    status             text NOT NULL DEFAULT 'requested'
                       CHECK (status IN ('requested', 'approved', 'scheduled', 'done', 'cancelled')),
    priority           smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),  -- 1: most urgent
    origin             text NOT NULL DEFAULT 'staff'
                       CHECK (origin IN ('staff', 'inspection', 'report', 'storm', 'replacement')),
    origin_id          bigint,        -- the inspection, report, damage record or removal order
    crew               text,          -- the field account that does the work
    scheduled_on       date,
    estimated_cost_vnd bigint CHECK (estimated_cost_vnd >= 0),
    actual_cost_vnd    bigint CHECK (actual_cost_vnd >= 0),
    note               text,
    commune_code       text,
    geom               geometry(Point, 4326),   -- the first tree, or the spot of a planting
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('scheduled', 'done') OR (crew IS NOT NULL AND scheduled_on IS NOT NULL))
);
CREATE INDEX care_work_orders_status_idx ON smarttrees.care_work_orders (status, priority, id);
CREATE INDEX care_work_orders_crew_idx ON smarttrees.care_work_orders (crew, status);
CREATE INDEX care_work_orders_geom_idx ON smarttrees.care_work_orders USING gist (geom);

CREATE TABLE smarttrees.care_work_order_trees (
    order_id           bigint NOT NULL REFERENCES smarttrees.care_work_orders ON DELETE CASCADE,
    tree_id            bigint NOT NULL,
    estimated_cost_vnd bigint,
    PRIMARY KEY (order_id, tree_id)
);
CREATE INDEX care_work_order_trees_tree_idx ON smarttrees.care_work_order_trees (tree_id);

CREATE TABLE smarttrees.care_work_order_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES smarttrees.care_work_orders ON DELETE CASCADE,
    from_status text,             -- NULL: the order was created
    to_status   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    note        text
);
CREATE INDEX care_work_order_events_order_idx ON smarttrees.care_work_order_events (order_id, id);
