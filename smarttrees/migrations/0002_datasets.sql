-- depends: 0001_core
-- What bulk generators and loaders put into this database, so that running them twice is a
-- no-op: one row per dataset (e.g. the synthetic province), with its parameters and counts.

CREATE TABLE smarttrees.datasets (
    name       text PRIMARY KEY,
    params     jsonb NOT NULL DEFAULT '{}',   -- scale, seed, communes source…
    counts     jsonb NOT NULL DEFAULT '{}',   -- rows loaded per table
    loaded_at  timestamptz NOT NULL DEFAULT now()
);
