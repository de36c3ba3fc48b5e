-- depends: 0001_core
-- Every `smarttrees load trees` run that wrote: from which files (with their SHA-256), with
-- which options, by whom, and what it did. A run whose files, options and reference data match
-- an earlier clean run, with no tree changed since (the newest tree_history id unchanged), is
-- known to change nothing: the loader reports it unchanged without re-checking every row.
CREATE TABLE smarttrees.load_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    fingerprint  text NOT NULL,           -- SHA-256 of files, options, species and communes
    files        jsonb NOT NULL,          -- [{name, sha256, rows, inserted, updated, unchanged, refused}]
    actor        text,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    tree_version bigint NOT NULL,         -- max(tree_history.id) when the run committed
    skipped      boolean NOT NULL DEFAULT false
);
CREATE INDEX load_runs_fingerprint_idx ON smarttrees.load_runs (fingerprint, id);
