"""The receipt document the service sends, and its two renderings: ESC/POS bytes and plain text.

Chinese text: python-escpos's "magic" encoder only special-cases strings holding a character in
U+4E00–U+9FA5 (it then writes the whole string as GB18030) and never switches the printer into
its Chinese mode; a line of full-width punctuation or digits alone (``：￥１２``) comes out as
``?``. So the renderer bypasses the magic encoder: after ``ESC @`` it sends ``FS &`` (select
Chinese character mode, which Chinese-market ESC/POS printers read as GB18030 double-byte
text), and writes every text line itself, encoded as GB18030. ASCII is a subset of GB18030, so
one encoding serves all text and no code-page switches are ever sent.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Annotated, Any, Literal

import segno
from escpos.escpos import Escpos
from pydantic import BaseModel, Field, model_validator

ENCODING = "gb18030"
FS_CHINESE_MODE_ON = b"\x1c\x26"  # FS &
ESC_INIT = b"\x1b\x40"  # ESC @


class Align(StrEnum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


class TextLine(BaseModel):
    type: Literal["text"] = "text"
    text: str = Field(default="", max_length=200)
    bold: bool = False
    double: bool = Field(default=False, description="double width and height")
    align: Align = Align.LEFT


class QrLine(BaseModel):
    type: Literal["qr"] = "qr"
    payload: str = Field(min_length=1, max_length=700)
    size: int = Field(default=6, ge=1, le=16, description="module size in dots")
    align: Align = Align.CENTER


class RuleLine(BaseModel):
    """A full-width separator line."""

    type: Literal["rule"] = "rule"
    char: str = Field(default="-", min_length=1, max_length=1)


class FeedLine(BaseModel):
    type: Literal["feed"] = "feed"
    lines: int = Field(default=1, ge=1, le=10)


class CutLine(BaseModel):
    type: Literal["cut"] = "cut"
    partial: bool = False


ReceiptLine = Annotated[TextLine | QrLine | RuleLine | FeedLine | CutLine, Field(discriminator="type")]


class Receipt(BaseModel):
    """An 80 mm receipt: registration slip, payment receipt, appointment slip …

    A line given as a plain string is a left-aligned text line. ``job_id`` makes printing
    idempotent: the agent prints a given job once, and answers a repeat with the first result.
    """

    job_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    title: str = Field(default="", max_length=60, description="what the receipt is, for logs and the demo panel")
    lines: list[ReceiptLine] = Field(min_length=1, max_length=300)
    cut: bool = Field(default=True, description="cut after the last line (unless it is already a cut)")

    @model_validator(mode="before")
    @classmethod
    def _strings_are_text_lines(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("lines"), list):
            data = {**data, "lines": [{"type": "text", "text": line} if isinstance(line, str) else line
                                      for line in data["lines"]]}
        return data

    @property
    def qr_payloads(self) -> list[str]:
        return [line.payload for line in self.lines if isinstance(line, QrLine)]


def encode_text(text: str) -> bytes:
    return text.encode(ENCODING, errors="replace")


def render_escpos(receipt: Receipt, printer: Escpos, *, chinese_mode: bool = True, native_qr: bool = True,
                  columns: int = 48) -> None:
    """Write ``receipt`` to ``printer`` (a python-escpos printer, usually a Dummy to capture the bytes)."""
    printer.hw("INIT")
    if chinese_mode:
        printer._raw(FS_CHINESE_MODE_ON)
    for line in receipt.lines:
        if isinstance(line, TextLine):
            printer.set_with_default(align=line.align.value, bold=line.bold,
                                     double_width=line.double, double_height=line.double)
            printer._raw(encode_text(line.text) + b"\n")
        elif isinstance(line, QrLine):
            printer.set_with_default(align=line.align.value)
            # ESC a (alignment) positions both the native code and a raster image on the printers we
            # meet; python-escpos's own ``center`` needs a profile that knows the paper width.
            printer.qr(line.payload, size=line.size, native=native_qr)
            printer._raw(b"\n")
        elif isinstance(line, RuleLine):
            printer.set_with_default()
            printer._raw(encode_text(line.char * columns) + b"\n")
        elif isinstance(line, FeedLine):
            printer.print_and_feed(line.lines)
        elif isinstance(line, CutLine):
            printer.cut(mode="PART" if line.partial else "FULL")
    if receipt.cut and not (receipt.lines and isinstance(receipt.lines[-1], CutLine)):
        printer.cut()
    printer.set_with_default()


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _aligned(text: str, align: Align, columns: int) -> str:
    gap = max(columns - display_width(text), 0)
    if align is Align.CENTER:
        return " " * (gap // 2) + text
    if align is Align.RIGHT:
        return " " * gap + text
    return text


def qr_text_art(payload: str) -> list[str]:
    """The QR code drawn with half blocks (two modules a character, top and bottom): scannable on a screen."""
    matrix = [list(row) for row in segno.make_qr(payload, error="m").matrix]
    size = len(matrix)
    quiet = [[0] * (size + 2) for _ in range(1)]
    rows = quiet + [[0] + row + [0] for row in matrix] + quiet
    if len(rows) % 2:
        rows.append([0] * (size + 2))
    blocks = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}
    return ["".join(blocks[(top[i], bottom[i])] for i in range(size + 2)) for top, bottom in zip(rows[::2], rows[1::2])]


def render_text(receipt: Receipt, columns: int = 48) -> str:
    """A plain-text rendering at the printer's width (CJK characters count as two columns)."""
    out: list[str] = []
    for line in receipt.lines:
        if isinstance(line, TextLine):
            text = line.text
            if line.double:
                # Double width: spread the characters so the text takes the space it takes on paper.
                text = "".join(ch + (" " if display_width(ch) == 1 else "") for ch in text)
            out.append(_aligned(text, line.align, columns))
        elif isinstance(line, QrLine):
            for art in qr_text_art(line.payload):
                out.append(_aligned(art, line.align, columns))
            out.append(_aligned(f"[二维码] {line.payload}", line.align, columns))
        elif isinstance(line, RuleLine):
            out.append(line.char * columns)
        elif isinstance(line, FeedLine):
            out.extend([""] * line.lines)
        elif isinstance(line, CutLine):
            out.append("✂" + "-" * (columns - 2))
    if receipt.cut and not (receipt.lines and isinstance(receipt.lines[-1], CutLine)):
        out.append("✂" + "-" * (columns - 2))
    return "\n".join(line.rstrip() for line in out) + "\n"
