-- Cheap test first: do two good rows of the run share a spot?
SELECT EXISTS (SELECT FROM load_checked WHERE gx IS NOT NULL AND problems = '{}'
               GROUP BY gx, gy HAVING count(*) > 1)
