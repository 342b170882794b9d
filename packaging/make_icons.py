"""Render Llamadesk's icon files from the SVG sources in resources/icons/.

    .venv/bin/python packaging/make_icons.py

Writes (the outputs are committed; run this again after changing an SVG):
- resources/icons/hicolor/<n>x<n>/apps/llamadesk.png for 16, 24, 32, 48, 64, 128, 256 and 512 px
  (the freedesktop icon-theme layout that packaging/linux/install.sh copies);
- resources/icons/llamadesk.ico (Windows: 16 to 256 px, PNG-compressed entries);
- resources/icons/llamadesk.icns (macOS: 16 to 1024 px, PNG entries).

Qt draws the SVG (PySide6's QtSvg, part of PySide6-Essentials), the ICO and ICNS containers are
written here in plain Python: no other dependency. 16 px comes from llamadesk-small.svg, a
version drawn on that size's pixel grid; every other size from llamadesk.svg.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SOURCE = ICONS / "llamadesk.svg"
SMALL_SOURCE = ICONS / "llamadesk-small.svg"  # for sizes up to SMALL_MAX
SMALL_MAX = 16
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS element types holding PNG data, with their pixel size (the @2x types repeat sizes).
ICNS_TYPES = (
    (b"icp4", 16), (b"ic11", 32), (b"icp5", 32), (b"ic12", 64), (b"icp6", 64),
    (b"ic07", 128), (b"ic13", 256), (b"ic08", 256), (b"ic14", 512), (b"ic09", 512), (b"ic10", 1024),
)


def png_path(size: int) -> Path:
    return ICONS / "hicolor" / f"{size}x{size}" / "apps" / "llamadesk.png"


def render_png(size: int) -> bytes:
    """The icon drawn at size x size pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    source = SMALL_SOURCE if size <= SMALL_MAX else SOURCE
    renderer = QSvgRenderer(str(source))
    if not renderer.isValid():
        raise SystemExit(f"{source} is not a valid SVG for Qt's renderer")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise SystemExit(f"Qt could not encode the {size} px PNG")
    buffer.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico whose entries are PNG images (supported since Windows Vista)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    directory = b""
    offset = len(header) + 16 * len(pngs)
    for size, png in sorted(pngs.items()):
        dim = 0 if size >= 256 else size  # 0 means 256
        directory += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
    return header + directory + b"".join(png for _, png in sorted(pngs.items()))


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns made of PNG elements."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts, image I/O
    sizes = sorted(set(PNG_SIZES) | set(ICO_SIZES) | {size for _, size in ICNS_TYPES})
    pngs = {size: render_png(size) for size in sizes}
    for size in PNG_SIZES:
        path = png_path(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pngs[size])
        print(f"wrote {path.relative_to(ICONS.parent.parent)}")
    (ICONS / "llamadesk.ico").write_bytes(ico_bytes({size: pngs[size] for size in ICO_SIZES}))
    print("wrote resources/icons/llamadesk.ico")
    (ICONS / "llamadesk.icns").write_bytes(icns_bytes(pngs))
    print("wrote resources/icons/llamadesk.icns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
