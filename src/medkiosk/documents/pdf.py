"""A4 PDFs with Chinese text: which CJK font to use, paragraph styles, a ruled table, bytes out.

ReportLab embeds only fonts with TrueType outlines. Debian's ``fonts-noto-cjk`` ships Noto Sans/
Serif CJK with PostScript (CFF) outlines, which ReportLab refuses ("postscript outlines are not
supported"). So :func:`cjk_font` embeds the first TrueType CJK font it finds on the machine (a
TrueType Noto Sans SC, WenQuanYi, Droid Sans Fallback …) and otherwise names Adobe's standard
CID font ``STSong-Light``: not embedded, every PDF viewer substitutes it, and CUPS/poppler
(how the kiosks print A4) take the machine's own CJK font through fontconfig — Noto CJK where
``fonts-noto-cjk`` is installed. Either way the text is real text that pypdf and search read
back. Nothing is ever downloaded.

Typical use::

    font = cjk_font()
    s = styles(font)
    pdf = render_a4([Paragraph("医疗收费电子票据", s["title"]), ruled_table(rows, [60 * mm, 40 * mm], font)],
                    title="医疗收费电子票据")
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont, TTFontFile
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, SimpleDocTemplate, Table, TableStyle

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# File names in order of preference: Noto first, then other CJK families Linux distributions ship.
CANDIDATE_PATTERNS = (
    "NotoSansSC-Regular.ttf", "NotoSansSC*.ttf", "NotoSansCJK*-Regular.tt[cf]", "NotoSansCJK*-Regular.otf",
    "NotoSerifCJK*-Regular.tt[cf]", "NotoSansSC-Regular.otf", "SourceHanSans*-Regular.tt[cf]",
    "wqy-zenhei.ttc", "wqy-microhei.ttc", "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf",
    "uming.ttc", "ukai.ttc",
)
FALLBACK_CID_FONT = "STSong-Light"
# A font that cannot draw these is no use for our documents.
REQUIRED_CHARACTERS = "医疗收费电子票据统筹个人账户现金红冲异地结算患者检查申请单处方"
_SIMPLIFIED_SUBFONT = re.compile(r"(^|[^a-z])(sc|gb|cn|hans)([^a-z]|$)|zenhei|microhei", re.IGNORECASE)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CjkFont:
    """A registered ReportLab font that draws Chinese; ``path`` is None for the CID fallback."""

    name: str
    path: Path | None = None

    @property
    def embedded(self) -> bool:
        """True when the font file travels inside the PDF (a TrueType font was found)."""
        return self.path is not None


def find_cjk_font_files(dirs: Iterable[Path] = FONT_DIRS) -> list[Path]:
    """CJK font files under ``dirs``, most preferred first (whether ReportLab can use them or not)."""
    found: list[Path] = []
    roots = [d for d in dirs if d.is_dir()]
    for pattern in CANDIDATE_PATTERNS:
        for root in roots:
            for path in sorted(root.rglob(pattern)):
                if path not in found:
                    found.append(path)
    return found


def cjk_font(candidates: Iterable[Path] | None = None) -> CjkFont:
    """Register and return the font to draw Chinese with: the first usable candidate, else STSong-Light.

    ``candidates`` default to :func:`find_cjk_font_files` (and the answer is then cached for the
    process); pass a list to choose, or ``[]`` to force the CID fallback.
    """
    if candidates is None:
        return _default_font()
    return _choose(list(candidates))


@functools.lru_cache(maxsize=1)
def _default_font() -> CjkFont:
    return _choose(find_cjk_font_files())


def _choose(candidates: list[Path]) -> CjkFont:
    for path in candidates:
        try:
            font = _register_truetype(path)
        except Exception as exc:  # noqa: BLE001 — any font ReportLab cannot read is skipped, not fatal
            log.info("cjk font %s not usable: %s", path, exc)
            continue
        if font is not None:
            return font
    if FALLBACK_CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_CID_FONT))
        _register_family(FALLBACK_CID_FONT)
    return CjkFont(FALLBACK_CID_FONT)


def _register_truetype(path: Path) -> CjkFont | None:
    index = _simplified_subfont(path)
    name = f"CJK-{re.sub(r'[^A-Za-z0-9]+', '-', path.stem)}-{index}"
    if name in pdfmetrics.getRegisteredFontNames():
        return CjkFont(name, path)
    font = TTFont(name, str(path), subfontIndex=index)
    missing = [c for c in REQUIRED_CHARACTERS if ord(c) not in font.face.charToGlyph]
    if missing:
        log.info("cjk font %s lacks %s", path, "".join(missing[:5]))
        return None
    pdfmetrics.registerFont(font)
    _register_family(name)
    return CjkFont(name, path)


def _simplified_subfont(path: Path) -> int:
    """For a collection (.ttc), the index of its Simplified Chinese face; 0 for a single font."""
    with path.open("rb") as handle:
        header = handle.read(12)
    if header[:4] != b"ttcf":
        return 0
    count = int.from_bytes(header[8:12], "big")
    for index in range(min(count, 16)):
        face = TTFontFile(str(path), charInfo=0, subfontIndex=index)
        if _SIMPLIFIED_SUBFONT.search(face.name.decode() if isinstance(face.name, bytes) else face.name):
            return index
    return 0


def _register_family(name: str) -> None:
    # One face for every style, so <b> in a paragraph never fails for want of a bold file.
    pdfmetrics.registerFontFamily(name, normal=name, bold=name, italic=name, boldItalic=name)


def styles(font: CjkFont) -> dict[str, ParagraphStyle]:
    """Paragraph styles in ``font`` that wrap Chinese between any two characters."""

    def style(name: str, size: float, *, align: int = TA_LEFT, leading: float | None = None,
              color: colors.Color = colors.black, space_after: float = 0) -> ParagraphStyle:
        return ParagraphStyle(name, fontName=font.name, fontSize=size, leading=leading or size * 1.4,
                              alignment=align, textColor=color, wordWrap="CJK", spaceAfter=space_after)

    return {
        "title": style("title", 20, align=TA_CENTER, leading=28, space_after=4),
        "subtitle": style("subtitle", 11, align=TA_CENTER, space_after=8),
        "heading": style("heading", 13, space_after=4),
        "body": style("body", 10.5),
        "small": style("small", 8.5, color=colors.HexColor("#444444")),
        "cell": style("cell", 9.5),
        "cell_right": style("cell_right", 9.5, align=TA_RIGHT),
        "cell_center": style("cell_center", 9.5, align=TA_CENTER),
        "stamp": style("stamp", 16, align=TA_CENTER, color=colors.HexColor("#c00000")),
    }


def ruled_table(rows: Sequence[Sequence[object]], col_widths: Sequence[float], font: CjkFont, *,
                header_rows: int = 1, right_columns: Iterable[int] = (), font_size: float = 9.5) -> Table:
    """A table with thin rules; plain strings are drawn in ``font``, Paragraphs as they are."""
    table = Table([list(row) for row in rows], colWidths=list(col_widths), repeatRows=header_rows)
    commands: list[tuple[object, ...]] = [
        ("FONT", (0, 0), (-1, -1), font.name, font_size),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    if header_rows:
        commands.append(("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#eeeeee")))
    for column in right_columns:
        commands.append(("ALIGN", (column, header_rows), (column, -1), "RIGHT"))
    table.setStyle(TableStyle(commands))
    return table


def render_a4(story: list[Flowable], *, title: str, author: str = "medkiosk", subject: str = "",
              margin: float = 18 * mm, on_page: Callable[[Canvas, SimpleDocTemplate], None] | None = None) -> bytes:
    """The PDF of ``story`` on A4 pages. The same story gives the same bytes (no timestamps, fixed id)."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                                 bottomMargin=margin, title=title, author=author, subject=subject,
                                 creator="medkiosk", invariant=True)
    if on_page is None:
        document.build(story)
    else:
        document.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


__all__ = ["FALLBACK_CID_FONT", "CjkFont", "cjk_font", "find_cjk_font_files", "render_a4", "ruled_table", "styles"]
