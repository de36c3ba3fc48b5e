-- depends: 0012_care_reports
-- One photo store for the whole project (smarttrees.photos): the photos of public hazard
-- reports and of the field app's tree checks. The bytes stay as sent (EXIF kept); the EXIF GPS
-- position, when the camera wrote one, is also kept in columns. A photo is keyed by a random id
-- (never a file name, which may carry a person's name) and known by its SHA-256, so the same
-- photo sent twice (a resend after a cut) is stored once. Only authorised users read it back.

CREATE TABLE restricted.photos (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sha256      text NOT NULL UNIQUE,
    media_type  text NOT NULL CHECK (media_type IN ('image/jpeg', 'image/png', 'image/webp')),
    size_bytes  integer NOT NULL CHECK (size_bytes > 0),
    width       integer,
    height      integer,
    gps_lon     double precision CHECK (gps_lon BETWEEN -180 AND 180),
    gps_lat     double precision CHECK (gps_lat BETWEEN -90 AND 90),
    taken_at    text,                    -- EXIF DateTimeOriginal as written by the camera
    source      text NOT NULL CHECK (source IN ('report', 'field')),
    uploaded_by text,                    -- the account (field/editor); NULL for a public report
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    data        bytea NOT NULL
);

-- The reports' photos move into the store; a report keeps a reference.
ALTER TABLE restricted.care_report_details ADD COLUMN photo_id uuid REFERENCES restricted.photos;
INSERT INTO restricted.photos (sha256, media_type, size_bytes, source, uploaded_at, data)
SELECT DISTINCT ON (encode(sha256(photo), 'hex'))
       encode(sha256(photo), 'hex'), photo_type, length(photo), 'report', received_at, photo
FROM restricted.care_report_details
WHERE photo IS NOT NULL
ORDER BY encode(sha256(photo), 'hex'), received_at
ON CONFLICT (sha256) DO NOTHING;
UPDATE restricted.care_report_details d SET photo_id = p.id
FROM restricted.photos p
WHERE d.photo IS NOT NULL AND p.sha256 = encode(sha256(d.photo), 'hex');
ALTER TABLE restricted.care_report_details DROP COLUMN photo, DROP COLUMN photo_type;
