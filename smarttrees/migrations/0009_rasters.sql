-- depends: 0007_history_update_diff
-- Rasters beside the inventory (etl.raster, `smarttrees raster …`).
--
-- rasters: files registered for serving (`raster add`): tiles and coverages read the file at
-- `path`; the stretch (value_min, value_max) and colormap make the PNG tiles.
CREATE TABLE smarttrees.rasters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    title       text NOT NULL,
    path        text NOT NULL,
    band        smallint NOT NULL DEFAULT 1 CHECK (band >= 1),
    crs         text NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    dtype       text NOT NULL,
    nodata      double precision,
    value_min   double precision,
    value_max   double precision,
    colormap    text NOT NULL DEFAULT 'viridis',
    units       text,
    bbox        double precision[] NOT NULL CHECK (cardinality(bbox) = 4),  -- lon/lat W, S, E, N
    added_at    timestamptz NOT NULL DEFAULT now()
);

-- zonal_runs: one row per `raster zonal` run; its figures are in the table `table_name`
-- (smarttrees.zonal_<id>), made in the same transaction.
CREATE TABLE smarttrees.zonal_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raster_name text NOT NULL,
    raster_path text NOT NULL,
    raster_crs  text NOT NULL,
    band        smallint NOT NULL,
    zones       text NOT NULL,                  -- commune, stand, or the zone file's name
    stats       text[] NOT NULL,
    categorical boolean NOT NULL,
    zone_count  integer NOT NULL,
    table_name  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- raster_samples: a raster's value at each tree or stand (`raster sample`), one row per
-- (layer, name, feature). A side table rather than a column of trees, so that sampling a
-- million trees writes no tree history and changes no published tree column; it is the OGC
-- collection `raster_samples` (the tree's point, or the stand's point on surface).
CREATE TABLE smarttrees.raster_samples (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer       text NOT NULL CHECK (layer IN ('trees', 'stands')),
    feature_id  bigint NOT NULL,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    value       double precision,               -- NULL: nodata, or outside the raster
    raster_path text NOT NULL,
    band        smallint NOT NULL,
    sampled_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (layer, name, feature_id)
);
CREATE INDEX raster_samples_feature_idx ON smarttrees.raster_samples (layer, feature_id);
