-- A code used by an earlier row of the run (in file and row order) refuses the later rows.
UPDATE load_checked c SET problems = c.problems || d.problem
FROM (
    SELECT x.file_no, x.row_no,
           format('%s: %s already appears in %srow %s', f.code_label, x.tree_code,
                  CASE WHEN x.first_file <> x.file_no THEN ff.name || ' ' ELSE '' END,
                  x.first_row) AS problem
    FROM (
        SELECT file_no, row_no, tree_code,
               first_value(file_no) OVER w AS first_file, first_value(row_no) OVER w AS first_row,
               row_number() OVER w AS n
        FROM load_checked
        WHERE tree_code IN (SELECT tree_code FROM load_checked WHERE tree_code IS NOT NULL
                            GROUP BY tree_code HAVING count(*) > 1)
        WINDOW w AS (PARTITION BY tree_code ORDER BY file_no, row_no)
    ) x
    JOIN load_files f ON f.file_no = x.file_no
    JOIN load_files ff ON ff.file_no = x.first_file
    WHERE x.n > 1
) d
WHERE c.file_no = d.file_no AND c.row_no = d.row_no
