-- depends: 0001_core
-- Chain of custody: the public face of scan events (an OGC collection QGIS can map), and the
-- indexes the custody checks read on every scan.

-- Every custody event where it happened, without who scanned it (device and actor are people).
CREATE VIEW smarttrees.custody_events AS
    SELECT e.id,
           e.code,
           e.item_type,
           e.event_type,
           e.occurred_at,
           e.quantity,
           e.volume_m3,
           e.details ->> 'status_after' AS status_after,
           e.details ->> 'destination' AS destination,
           e.details ->> 'fpl_number' AS fpl_number,
           coalesce(ls.scientific_name, gs.scientific_name) AS species_name,
           st.stand_code,
           e.geom
    FROM smarttrees.scan_events e
    LEFT JOIN smarttrees.seedling_lots l ON e.item_type = 'seedling_lot' AND l.id = e.item_id
    LEFT JOIN smarttrees.species ls ON ls.id = l.species_id
    LEFT JOIN smarttrees.timber_logs g ON e.item_type = 'timber_log' AND g.id = e.item_id
    LEFT JOIN smarttrees.species gs ON gs.id = g.species_id
    LEFT JOIN smarttrees.stands st ON st.id = g.stand_id;

-- The harvest check sums the volume that has left a stand; logs still in the stand are skipped.
CREATE INDEX timber_logs_stand_out_idx ON smarttrees.timber_logs (stand_id)
    INCLUDE (volume_m3) WHERE status <> 'felled';
-- Trace of a transport load: the logs loaded on it.
CREATE INDEX timber_logs_load_idx ON smarttrees.timber_logs (load_id) WHERE load_id IS NOT NULL;
-- A forest-product list number names one transport load.
CREATE UNIQUE INDEX transport_loads_fpl_idx ON smarttrees.transport_loads (fpl_number)
    WHERE fpl_number IS NOT NULL;
