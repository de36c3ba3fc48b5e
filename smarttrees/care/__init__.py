"""Tree care: inspections with a TRAQ risk rating, work orders, storm damage, public reports.

- :mod:`smarttrees.care.traq`: the two ISA TRAQ matrices (data in ``traq.json``) and ``rate``;
- :mod:`smarttrees.care.vocabulary`: defects, conditions and the inspection cycle;
- :mod:`smarttrees.care.inspections`: recording inspections (set-based, all or nothing),
  the per-tree risk and next due date, and the due list.
"""
