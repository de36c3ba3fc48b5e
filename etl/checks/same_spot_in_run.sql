-- Distinct codes at one spot (within about 10 cm) of the run: the later good row is refused.
WITH spots AS (
    SELECT file_no, row_no, tree_code, gx, gy
    FROM load_checked WHERE gx IS NOT NULL AND problems = '{}'
), shared AS (
    SELECT gx, gy FROM spots GROUP BY gx, gy HAVING count(*) > 1
), ranked AS (
    SELECT s.*, first_value(tree_code) OVER w AS first_code,
           first_value(row_no) OVER w AS first_row,
           row_number() OVER w AS n
    FROM spots s JOIN shared USING (gx, gy)
    WINDOW w AS (PARTITION BY gx, gy ORDER BY file_no, row_no)
)
UPDATE load_checked c
SET problems = c.problems || format('%s: same spot as tree %s (row %s)', f.position_label,
                                    r.first_code, r.first_row)
FROM ranked r JOIN load_files f USING (file_no)
WHERE r.n > 1 AND c.file_no = r.file_no AND c.row_no = r.row_no
