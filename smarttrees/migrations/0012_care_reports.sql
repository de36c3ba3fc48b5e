-- depends: 0012_care_orders
-- Tree care (issue 19), part 4: hazard reports from the public (smarttrees.care.reports).
-- What a reporter types or sends (note, contact, photo) and the hash of the address they sent
-- from live in the restricted schema; the public part is the position, the kind of hazard, the
-- status and the day received. A report accepted by staff becomes a work order.

CREATE TABLE smarttrees.care_reports (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    hazard        text NOT NULL CHECK (hazard IN ('fallen', 'leaning', 'broken_branch', 'dead',
                                                  'blocking', 'other')),
    tree_id       bigint,              -- from the tag's QR code or a typed tree code
    status        text NOT NULL DEFAULT 'new'
                  CHECK (status IN ('new', 'accepted', 'rejected')),
    commune_code  text,
    work_order_id bigint REFERENCES smarttrees.care_work_orders,
    triaged_by    text,
    triaged_at    timestamptz,
    geom          geometry(Point, 4326) NOT NULL
);
CREATE INDEX care_reports_status_idx ON smarttrees.care_reports (status, received_at);
CREATE INDEX care_reports_geom_idx ON smarttrees.care_reports USING gist (geom);

CREATE TABLE restricted.care_report_details (
    report_id   bigint PRIMARY KEY REFERENCES smarttrees.care_reports ON DELETE CASCADE,
    note        text,
    contact     text,                  -- personal data: never published, never logged
    photo       bytea,
    photo_type  text,
    sender_hash text NOT NULL,         -- salted SHA-256 of the sender's address: the rate limit
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX care_report_details_sender_idx ON restricted.care_report_details (sender_hash, received_at);

-- The salt of the sender hashes, made once per database: a hash cannot be matched to an
-- address without it, and it never leaves the restricted schema.
CREATE TABLE restricted.care_report_salt (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    salt      text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text)
);
INSERT INTO restricted.care_report_salt DEFAULT VALUES;
