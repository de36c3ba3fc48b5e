"""Loading data into PostGIS: readers, mappings, validation, staging and merge, synthetic data."""
