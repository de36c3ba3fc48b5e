-- A new code at a spot another tree of the inventory already holds is refused.
WITH new_rows AS MATERIALIZED (
    SELECT n.file_no, n.row_no, n.tree_code, n.geom
    FROM load_checked n
    WHERE n.geom IS NOT NULL AND n.problems = '{}'
      AND NOT EXISTS (SELECT 1 FROM smarttrees.trees e WHERE e.tree_code = n.tree_code)
), hits AS MATERIALIZED (
    SELECT r.file_no, r.row_no,
           (SELECT t.tree_code FROM smarttrees.trees t
            WHERE t.geom && ST_Expand(r.geom, 1e-6) AND t.tree_code <> r.tree_code
            LIMIT 1) AS other
    FROM new_rows r
)
UPDATE load_checked c
SET problems = c.problems || format('%s: same spot as tree %s already in the database',
                                    f.position_label, h.other)
FROM hits h JOIN load_files f USING (file_no)
WHERE h.other IS NOT NULL AND c.file_no = h.file_no AND c.row_no = h.row_no
