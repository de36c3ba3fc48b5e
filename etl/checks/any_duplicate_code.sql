-- Cheap test first: is any code used twice in the run (one hashed pass)?
SELECT EXISTS (SELECT FROM load_checked WHERE tree_code IS NOT NULL
               GROUP BY tree_code HAVING count(*) > 1)
