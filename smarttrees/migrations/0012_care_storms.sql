-- depends: 0012_care_orders
-- Tree care (issue 19), part 3: storm events and the damage field teams record under them
-- (smarttrees.care.storms). A damage record is an offline-friendly event: one per
-- (device_id, client_event_id), so a batch replayed by a phone is stored once.

CREATE TABLE smarttrees.care_storms (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    started_on date NOT NULL,
    ended_on   date CHECK (ended_on >= started_on),
    area       geometry(MultiPolygon, 4326) CHECK (area IS NULL OR ST_IsValid(area)),
    note       text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE smarttrees.care_damage (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    storm_id         bigint NOT NULL REFERENCES smarttrees.care_storms,
    tree_id          bigint,          -- NULL: a tree not in the inventory, or not identified
    damage           text NOT NULL CHECK (damage IN ('fallen', 'broken', 'leaning', 'uprooted')),
    blocks_road      boolean NOT NULL DEFAULT false,
    hazard_to_people boolean NOT NULL DEFAULT false,
    priority         smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),   -- 1: most urgent
    note             text,
    observed_at      timestamptz NOT NULL,
    device_id        text NOT NULL,
    client_event_id  text NOT NULL,
    recorded_by      text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    commune_code     text,
    work_order_id    bigint REFERENCES smarttrees.care_work_orders,
    geom             geometry(Point, 4326) NOT NULL,
    UNIQUE (device_id, client_event_id)
);
CREATE INDEX care_damage_storm_idx ON smarttrees.care_damage (storm_id, priority, observed_at);
CREATE INDEX care_damage_geom_idx ON smarttrees.care_damage USING gist (geom);

-- Damage per storm and commune in force: the layer the IOC and the web map show.
CREATE VIEW smarttrees.care_storm_damage_by_commune AS
    SELECT s.id AS storm_id, s.name AS storm_name, c.code AS commune_code, c.name AS commune_name,
           count(d.id)::integer AS records,
           (count(d.id) FILTER (WHERE d.damage = 'fallen'))::integer AS fallen,
           (count(d.id) FILTER (WHERE d.damage = 'uprooted'))::integer AS uprooted,
           (count(d.id) FILTER (WHERE d.damage = 'broken'))::integer AS broken,
           (count(d.id) FILTER (WHERE d.damage = 'leaning'))::integer AS leaning,
           (count(d.id) FILTER (WHERE d.blocks_road))::integer AS blocking_roads,
           (count(d.id) FILTER (WHERE d.hazard_to_people))::integer AS hazards_to_people,
           (count(d.id) FILTER (WHERE d.work_order_id IS NULL))::integer AS without_order,
           c.geom
    FROM smarttrees.care_storms s
    CROSS JOIN smarttrees.communes c
    LEFT JOIN smarttrees.care_damage d ON d.storm_id = s.id AND d.commune_code = c.code
    GROUP BY s.id, s.name, c.code, c.name, c.geom;
