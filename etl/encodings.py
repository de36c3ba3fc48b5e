"""Legacy Vietnamese encodings (TCVN3/ABC and VNI) as Python codecs, and detection.

Old spreadsheets and CSV exports from the 1990s–2000s carry Vietnamese text in font-based
encodings: TCVN3 (TCVN 5712:1993, one byte per letter, lower case only for toned letters) and
VNI Windows (a base letter followed by one or two "accent" bytes, read through Windows-1252).
Registering them as codecs (``tcvn3``, ``vni``) lets every reader use ``--encoding tcvn3``.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import Any

# TCVN3 (ABC): byte → character.
_TCVN3 = {
    0xA1: "Ă", 0xA2: "Â", 0xA3: "Ê", 0xA4: "Ô", 0xA5: "Ơ", 0xA6: "Ư", 0xA7: "Đ",
    0xA8: "ă", 0xA9: "â", 0xAA: "ê", 0xAB: "ô", 0xAC: "ơ", 0xAD: "ư", 0xAE: "đ",
    0xB5: "à", 0xB6: "ả", 0xB7: "ã", 0xB8: "á", 0xB9: "ạ",
    0xBB: "ằ", 0xBC: "ẳ", 0xBD: "ẵ", 0xBE: "ắ", 0xC6: "ặ",
    0xC7: "ầ", 0xC8: "ẩ", 0xC9: "ẫ", 0xCA: "ấ", 0xCB: "ậ",
    0xCC: "è", 0xCE: "ẻ", 0xCF: "ẽ", 0xD0: "é", 0xD1: "ẹ",
    0xD2: "ề", 0xD3: "ể", 0xD4: "ễ", 0xD5: "ế", 0xD6: "ệ",
    0xD7: "ì", 0xD8: "ỉ", 0xDC: "ĩ", 0xDD: "í", 0xDE: "ị",
    0xDF: "ò", 0xE1: "ỏ", 0xE2: "õ", 0xE3: "ó", 0xE4: "ọ",
    0xE5: "ồ", 0xE6: "ổ", 0xE7: "ỗ", 0xE8: "ố", 0xE9: "ộ",
    0xEA: "ờ", 0xEB: "ở", 0xEC: "ỡ", 0xED: "ớ", 0xEE: "ợ",
    0xEF: "ù", 0xF1: "ủ", 0xF2: "ũ", 0xF3: "ú", 0xF4: "ụ",
    0xF5: "ừ", 0xF6: "ử", 0xF7: "ữ", 0xF8: "ứ", 0xF9: "ự",
    0xFA: "ỳ", 0xFB: "ỷ", 0xFC: "ỹ", 0xFD: "ý", 0xFE: "ỵ",
}
_TCVN3_DECODE = "".join(_TCVN3.get(b, chr(b)) for b in range(256))
_TCVN3_ENCODE = {ord(ch): b for b, ch in _TCVN3.items()}

# VNI Windows: Unicode letter → its byte sequence read as Windows-1252.
_VNI_BASE = {"ă": "aê", "â": "aâ", "ê": "eâ", "ô": "oâ", "ơ": "ô", "ư": "ö", "đ": "ñ"}
_VNI_TONES = {"grave": "ø", "acute": "ù", "hook": "û", "tilde": "õ", "dot": "ï"}
_VNI_HAT_TONES = {"grave": "à", "acute": "á", "hook": "å", "tilde": "ã", "dot": "ä"}
_VNI_BREVE_TONES = {"grave": "è", "acute": "é", "hook": "ú", "tilde": "ü", "dot": "ë"}
_TONE_MARKS = {"\u0300": "grave", "\u0301": "acute", "\u0309": "hook", "\u0303": "tilde",
               "\u0323": "dot"}


def _vni_table() -> dict[str, str]:
    import unicodedata

    table: dict[str, str] = {}
    for base in "aeiouyăâêôơư":
        for mark, tone in _TONE_MARKS.items():
            letter = unicodedata.normalize("NFC", base + mark)
            if base in "âêô":
                seq = base_plain(base) + _VNI_HAT_TONES[tone]
            elif base == "ă":
                seq = "a" + _VNI_BREVE_TONES[tone]
            elif base == "i":
                seq = {"grave": "ì", "acute": "í", "hook": "æ", "tilde": "ó", "dot": "ò"}[tone]
            elif base == "y" and tone == "dot":
                seq = "î"
            else:
                seq = _VNI_BASE.get(base, base) + _VNI_TONES[tone]
            table[letter] = seq
    table.update(_VNI_BASE)
    for letter, seq in list(table.items()):
        table[letter.upper()] = seq.upper()
    return table


def base_plain(letter: str) -> str:
    """The unaccented Latin letter under â, ê, ô."""
    return {"â": "a", "ê": "e", "ô": "o"}[letter]


_VNI_ENCODE = _vni_table()
# Decode longest sequences first so "aâ" + tone is not read as "a" + "â".
_VNI_DECODE = {seq: letter for letter, seq in _VNI_ENCODE.items()}
_VNI_PATTERN = re.compile(
    "|".join(re.escape(s) for s in sorted(_VNI_DECODE, key=len, reverse=True)))


def _tcvn3_decode(data: Any, errors: str = "strict") -> tuple[str, int]:
    return bytes(data).decode("latin-1").translate(_TCVN3_DECODE_TABLE), len(data)


_TCVN3_DECODE_TABLE = {i: _TCVN3_DECODE[i] for i in range(256)}


def _tcvn3_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    out = bytearray()
    for ch in text:
        code = _TCVN3_ENCODE.get(ord(ch), ord(ch))
        if code > 0xFF or (code >= 0x80 and code not in _TCVN3):
            if errors == "strict":
                raise UnicodeEncodeError("tcvn3", text, 0, len(text), f"{ch!r} has no TCVN3 byte")
            code = ord("?")
        out.append(code)
    return bytes(out), len(text)


def _vni_decode(data: Any, errors: str = "strict") -> tuple[str, int]:
    text = bytes(data).decode("cp1252", errors="replace")
    return _VNI_PATTERN.sub(lambda m: _VNI_DECODE[m.group(0)], text), len(data)


def _vni_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    mapped = "".join(_VNI_ENCODE.get(ch, ch) for ch in text)
    return mapped.encode("cp1252", errors), len(text)


class _Tcvn3Incremental(codecs.IncrementalDecoder):
    def decode(self, input: Any, final: bool = False) -> str:  # noqa: A002 - codecs API
        return _tcvn3_decode(input)[0]


class _VniIncremental(codecs.BufferedIncrementalDecoder):
    # A base letter and its accent bytes may straddle two reads: keep a trailing letter back.
    def _buffer_decode(self, input: Any, errors: str, final: bool) -> tuple[str, int]:  # noqa: A002
        cut = len(input) if final else max(0, len(input) - 2)
        return _vni_decode(input[:cut])[0], cut


class _Tcvn3Encoder(codecs.IncrementalEncoder):
    def encode(self, input: str, final: bool = False) -> bytes:  # noqa: A002 - codecs API
        return _tcvn3_encode(input, self.errors)[0]


class _VniEncoder(codecs.IncrementalEncoder):
    def encode(self, input: str, final: bool = False) -> bytes:  # noqa: A002 - codecs API
        return _vni_encode(input, self.errors)[0]


def _search(name: str) -> codecs.CodecInfo | None:
    key = name.lower().replace("-", "").replace("_", "")
    if key in ("tcvn3", "tcvn", "abc", "tcvn5712"):
        return codecs.CodecInfo(
            _tcvn3_encode, _tcvn3_decode, name="tcvn3", incrementaldecoder=_Tcvn3Incremental,
            incrementalencoder=_Tcvn3Encoder,
        )
    if key in ("vni", "vniwindows", "vniwin"):
        return codecs.CodecInfo(
            _vni_encode, _vni_decode, name="vni", incrementaldecoder=_VniIncremental,
            incrementalencoder=_VniEncoder,
        )
    return None


_registered = False


def register() -> None:
    """Make ``tcvn3`` and ``vni`` known to :func:`codecs.lookup` (idempotent)."""
    global _registered
    if not _registered:
        codecs.register(_search)
        _registered = True




def detect(path: Path, sample_size: int = 1 << 20) -> str:
    """Guess the encoding of a text file from its first megabyte.

    UTF-8 (with or without BOM) when it decodes, or when most of its non-ASCII lines do (a
    UTF-8 file with a few rows pasted from a legacy file stays UTF-8, and the reader names
    those rows); otherwise the legacy encoding under which its words spell Vietnamese
    syllables (:func:`guess_legacy`).
    """
    register()
    with path.open("rb") as handle:
        sample = handle.read(sample_size)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a character cut by the sample's end
            return "utf-8"
    if _mostly_utf8(sample):
        return "utf-8"
    return guess_legacy(sample) or "cp1258"


def _mostly_utf8(sample: bytes) -> bool:
    """True when more non-ASCII lines of the sample decode as UTF-8 than do not."""
    good = bad = 0
    for line in sample.split(b"\n")[:-1]:     # the last may be cut by the sample's end
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    return good > bad


_WORD = re.compile(r"[^\W\d_]+")
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_MARKS = _TONES | frozenset("\u0302\u0306\u031b")     # circumflex, breve, horn


def guess_legacy(data: bytes) -> str | None:
    """The legacy encoding (tcvn3, vni, cp1258) under which ``data`` reads most like Vietnamese.

    Counting Vietnamese letters misleads (nearly every high byte is one in TCVN3): each word
    must spell a syllable, its vowels with at most one tone between them. ``None`` for plain
    ASCII, which reads the same in all of them.
    """
    register()
    if data.isascii():
        return None
    scores = {name: _syllable_score(data.decode(name, errors="replace"))
              for name in ("tcvn3", "vni", "cp1258")}
    return max(scores, key=lambda k: scores[k])


def _syllable_score(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    score = -3 * text.count("\ufffd")
    score -= 2 * sum(1 for c in text if not c.isascii() and not c.isalpha())
    for word in _WORD.findall(text):
        if not word.isascii():
            score += 1 if _syllable(word) else -2
    return score


def _syllable(word: str) -> bool:
    tones = 0
    for ch in word:
        if ch.isascii() or ch in "đĐ":
            continue
        parts = unicodedata.normalize("NFD", ch)
        if parts[0] not in "aeiouyAEIOUY" or len(parts) == 1 or not set(parts[1:]) <= _MARKS:
            return False
        tones += len(set(parts[1:]) & _TONES)
    return tones <= 1
