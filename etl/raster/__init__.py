"""Rasters beside the inventory: surfaces made from it, and what other rasters say about it.

- :mod:`etl.raster.grid`: the territory's grid in the province's metric CRS;
- :mod:`etl.raster.points`: trees streamed from PostGIS in projected chunks;
- :mod:`etl.raster.density`: tree density and canopy cover surfaces;
- :mod:`etl.raster.cog`: writing Cloud-Optimised GeoTIFFs (temporary file, then moved into place);
- :mod:`etl.raster.inputs`: opening a user's raster, with the checks that name what is wrong;
- :mod:`etl.raster.zonal`: zonal statistics per commune, stand or polygon file;
- :mod:`etl.raster.sample`: the raster's value at every tree or stand;
- :mod:`etl.raster.registry`: rasters registered for serving.
"""
