-- depends: 0005_custody
-- Field teams (issue 16): a field account belongs to a team, and items (seedling lots, timber
-- logs, transport loads, trees) are issued to a team, so the team's phones keep them for scans
-- without signal. Issued by `smarttrees teams issue` (issued_by 'command') or by the custody
-- events that hand an item over (issued_by 'custody', by the trigger below): the team of whoever
-- recorded an event holds the item, and a dispatch hands a lot to the teams whose area holds the
-- receiving stand or commune.

CREATE TABLE smarttrees.teams (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    area       geometry(MultiPolygon, 4326),   -- where it works: its stands, its offline map
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX teams_area_idx ON smarttrees.teams USING gist (area);

ALTER TABLE smarttrees.users
    ADD COLUMN team_id integer REFERENCES smarttrees.teams ON DELETE SET NULL;

CREATE TABLE smarttrees.team_items (
    team_id    integer NOT NULL REFERENCES smarttrees.teams ON DELETE CASCADE,
    item_type  text NOT NULL
               CHECK (item_type IN ('seedling_lot', 'timber_log', 'transport_load', 'tree')),
    item_id    bigint NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    issued_by  text NOT NULL CHECK (issued_by IN ('command', 'custody')),
    PRIMARY KEY (team_id, item_type, item_id)
);
CREATE INDEX team_items_item_idx ON smarttrees.team_items (item_type, item_id);

-- Once per INSERT statement (a batch of scans, the generator's bulk load): nothing to do and
-- two empty joins when there are no teams.
CREATE FUNCTION smarttrees.team_items_from_scans() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO smarttrees.team_items (team_id, item_type, item_id, issued_by)
    SELECT DISTINCT u.team_id, e.item_type, e.item_id, 'custody'
    FROM new_events e JOIN smarttrees.users u ON u.username = e.actor
    WHERE u.team_id IS NOT NULL
    ON CONFLICT DO NOTHING;

    INSERT INTO smarttrees.team_items (team_id, item_type, item_id, issued_by)
    SELECT DISTINCT t.id, e.item_type, e.item_id, 'custody'
    FROM new_events e
    LEFT JOIN smarttrees.stands s ON s.stand_code = e.details ->> 'to_stand'
    LEFT JOIN smarttrees.communes c ON c.code = e.details ->> 'to_commune'
    JOIN smarttrees.teams t
      ON ST_Intersects(t.area, ST_PointOnSurface(coalesce(s.geom, c.geom)))
    WHERE e.event_type = 'dispatched'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER scan_events_team_items
    AFTER INSERT ON smarttrees.scan_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION smarttrees.team_items_from_scans();
