import pytest

from smarttrees.layers import LAYERS, read_layer


def test_every_layer_reads_as_a_geodataframe(province_url):
    for name in LAYERS:
        frame = read_layer(name, url=province_url, limit=50)
        assert frame.crs.to_epsg() == 4326, name
        assert len(frame) > 0, name
        assert frame.geometry.notna().all(), name


def test_bbox_keeps_only_trees_inside(province_url):
    trees = read_layer("trees", url=province_url)
    minx, miny, maxx, maxy = trees.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    inside = read_layer("trees", bbox=box, url=province_url)
    expected = ((trees.geometry.x <= box[2]) & (trees.geometry.y <= box[3])).sum()
    assert len(inside) == expected > 0


def test_no_personal_data_leaves_through_layers(province_url):
    stands = read_layer("stands", url=province_url)
    assert stands.loc[stands.owner_type == "household", "owner_name"].isna().all()
    support = read_layer("citizen_support_by_commune", url=province_url)
    assert not {"full_name", "national_id"} & set(support.columns)


def test_unknown_layer_names_the_choices(province_url):
    with pytest.raises(KeyError, match="trees"):
        read_layer("citizens", url=province_url)
