"""The PMTiles archive (``smarttrees tiles export``) served over HTTP, with range requests.

A PMTiles reader (the web map's ``pmtiles`` protocol, QGIS, ``pmtiles`` CLIs) asks for byte
ranges: the header and root directory first, then a leaf directory or a tile. Starlette's
``FileResponse`` answers them (206 with ``Content-Range``, 416 with ``Content-Range: bytes */N``
for a range beyond the end, ``If-Range`` against its ETag); the file is opened per request, so
an archive replaced by a new export (renamed into place) is served from the next request on.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from gis_api.errors import NotFound
from smarttrees.settings import Settings

ARCHIVE_PATH = "/tiles/archive.pmtiles"
PMTILES_MEDIA_TYPE = "application/vnd.pmtiles"
MAX_AGE = 300  # s: a browser may keep ranges this long; a new export changes the ETag


async def archive_file(request: Request) -> Response:
    """The archive set by ``SMARTTREES_TILES_ARCHIVE``, whole or by byte ranges."""
    settings: Settings = request.app.state.settings
    path = settings.tiles_archive
    if path is None:
        raise NotFound(
            "no tiles archive is served here: export one (`smarttrees tiles export --out "
            "FILE.pmtiles`) and set SMARTTREES_TILES_ARCHIVE to it"
        )
    if not path.is_file():
        raise NotFound("the tiles archive is not there (yet): run `smarttrees tiles export`")
    return FileResponse(
        path,
        media_type=PMTILES_MEDIA_TYPE,
        headers={"Cache-Control": f"public, max-age={MAX_AGE}"},
    )
