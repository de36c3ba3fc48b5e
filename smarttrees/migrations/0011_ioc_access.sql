-- depends: 0011_ioc
-- Who read which personal records of the IOC, when: every read of the citizen-support register
-- through the API (admins only, GET /api/ioc/cases) writes one row here, in the same
-- transaction as the read. The filter names what was asked (a commune or a case number), never
-- a personal value.
CREATE TABLE restricted.access_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    user_id  integer,
    username text NOT NULL,
    role     text NOT NULL,
    what     text NOT NULL,
    filter   jsonb NOT NULL DEFAULT '{}',
    rows     integer NOT NULL CHECK (rows >= 0)
);
CREATE INDEX access_log_at_idx ON restricted.access_log (at);
