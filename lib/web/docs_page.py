"""The API reference: the committed OpenAPI document (`/api/openapi`) and the page that renders it
(`/api/docs`), served by the functions themselves so they work wherever the bundle is deployed.

The renderer is Redoc's standalone bundle (MIT, lib/web/redoc/, one file and its licenses), served
from here with no CDN: the smallest well-kept renderer that reads OpenAPI 3.1 offline (Swagger UI
needs twice the bytes, Scalar's bundle is over Vercel's 4.5 MB response limit). To update it:
`npm pack redoc@2` and copy `bundles/redoc.standalone.js` and its `.LICENSE.txt`.

The file is kept as npm ships it. The one thing in it that would leave this origin, Redocly's logo
fetched from their CDN in the sidebar's credit line, is taken out as the file is served
(`OFFLINE_PATCHES`): the credit stays, the image is not requested, and the page works offline
under a policy that allows nothing else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lib.config import PROJECT_ROOT

OPENAPI_FILE = PROJECT_ROOT / "openapi.json"
REDOC_DIR = Path(__file__).resolve().parent / "redoc"
REDOC_VERSION = "2.5.4"

ASSETS = {"redoc.standalone.js": "text/javascript; charset=utf-8"}

# Redoc injects its styles and runs its search in a worker made from a blob; nothing else leaves
# this origin.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; font-src 'self' data:; "
                               "worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
# The asset's URL does not change with its content, so caches check back daily.
ASSET_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "public, max-age=86400"}


@cache
def openapi_document() -> bytes:
    """The committed openapi.json (tests keep it equal to what the models make)."""
    return OPENAPI_FILE.read_bytes()


# (file, what it says, what is served instead); each must apply, or reading the file fails
OFFLINE_PATCHES = [
    ("redoc.standalone.js", b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'src:""'),
]


@cache
def read(name: str) -> bytes:
    """The page (`index.html`) or one of `ASSETS`; other names are not served."""
    if name != "index.html" and name not in ASSETS:
        raise KeyError(name)
    data = (REDOC_DIR / name).read_bytes()
    for file, found, served in OFFLINE_PATCHES:
        if file == name:
            if data.count(found) != 1:
                raise RuntimeError(f"{name} changed: {found!r} is no longer in it once; review OFFLINE_PATCHES")
            data = data.replace(found, served)
    return data
