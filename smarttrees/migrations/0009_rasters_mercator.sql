-- depends: 0009_rasters
-- mercator_path: the raster's Web Mercator COG copy (etl.raster.mercator), made by `raster add`
-- in the data folder, from which the PNG tiles are read; NULL for rasters registered before,
-- whose tiles are warped from `path` on every request until they are added again.
ALTER TABLE smarttrees.rasters ADD COLUMN mercator_path text;
