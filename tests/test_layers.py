"""``smarttrees.layers.read_layer``, the alias kept over the analyst API."""

import pytest

from smarttrees import catalog
from smarttrees.errors import ArgumentError
from smarttrees.layers import LAYERS, read_layer
from tests.fixtures.care import seed_care


def test_every_layer_reads(province_url):
    seed_care(province_url)  # the generator makes no inspection, order, storm or report
    for name in LAYERS:
        frame = read_layer(name, url=province_url, limit=50)
        layer = catalog.get(name)
        names = [f.name for f in layer.default_fields]  # a tree's carbon only on request
        assert [c for c in frame.columns if c != "geometry"][-len(names):] == names, name
        if layer.geometry is not None:
            assert frame.crs.to_epsg() == 4326, name
            assert frame.geometry.notna().all(), name
        if name not in ("custody_events", "raster_samples"):  # the generator scans and samples none
            assert len(frame) > 0, name


def test_bbox_keeps_only_trees_inside(province_url):
    trees = read_layer("trees", url=province_url)
    minx, miny, maxx, maxy = trees.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    inside = read_layer("trees", bbox=box, url=province_url)
    expected = ((trees.geometry.x <= box[2]) & (trees.geometry.y <= box[3])).sum()
    assert len(inside) == expected > 0


def test_no_personal_data_leaves_through_layers(province_url):
    stands = read_layer("stands", url=province_url)
    assert "owner_name" not in stands.columns
    support = read_layer("citizen_support_by_commune", url=province_url)
    assert not {"full_name", "national_id"} & set(support.columns)


def test_unknown_layer_names_the_choices(province_url):
    with pytest.raises(ArgumentError, match="trees"):
        read_layer("citizens", url=province_url)
