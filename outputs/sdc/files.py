"""F1: what kind of file an output is, judged by its bytes as well as its name.

Only aggregate answers leave, so a file that can carry rows (a data format, an archive, a
vector image keeping every plotted point, a pickle) is blocked whatever it is called: the
content is sniffed, so renaming ``cohort.parquet`` to ``cohort.csv`` does not get it
through. A CSV is a table only if it is short and has no column of identifiers; anything
else publishable (free text, notebooks, logs, unknown text files) goes to the checkers.

Decisions where the reference is silent: PDF is blocked (it can embed files and keeps the
coordinates of every point of a vector chart; publish PNG and CSV instead); HTML is
blocked (interactive charts embed their data); a file that is neither a known type nor
text is blocked (an unknown binary cannot be read by a checker); so is a table's evidence
sidecar (it holds true small counts and single people's contributions); a PNG must end at
its last chunk (nothing appended after it) and one carrying more than ``MAX_PNG_TEXT``
bytes of embedded text goes to review. The policy's ``max_csv_rows`` and ``threshold``
(an identifier column needs that many distinct values) are the only settings F1 reads.
"""

from __future__ import annotations

import codecs
import io
import re
from pathlib import PurePosixPath
from typing import Final

import numpy as np
import pandas as pd

from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status

CATEGORIES: Final = {
    "vector": "a vector image, which keeps the exact position of every point it plots",
    "pdf": "a PDF, which can embed files and keeps the exact position of every point a "
           "vector chart plots",
    "html": "an HTML page; interactive charts embed every data point they draw",
    "pickle": "a Python pickle, which can hold any data (and runs code when opened)",
    "columnar": "a binary data file (Parquet, Arrow/Feather, Avro or ORC)",
    "database": "a database",
    "hdf5": "an HDF5 data file",
    "archive": "an archive, which can carry any file",
    "office": "a spreadsheet or Office document, which can carry whole data sets",
    "numpy": "a NumPy array file",
    "r": "an R data file",
    "stats": "a Stata, SPSS or SAS data file",
}  # fmt: skip
_BLOCKED: Final = {
    "vector": "svg svgz eps ps ai emf emz wmf wmz dxf",
    "pdf": "pdf",
    "html": "html htm xhtml",
    "pickle": "pkl pickle joblib dill",
    "columnar": "parquet pq feather arrow ipc avro orc",
    "database": "sqlite sqlite3 db duckdb mdb accdb",
    "hdf5": "h5 hdf5 hdf he5 nc mat",
    "archive": "zip gz tgz bz2 xz zst 7z rar tar",
    "office": "xlsx xlsm xlsb xls ods docx doc pptx",
    "numpy": "npy npz",
    "r": "rds rdata rda qs fst",
    "stats": "dta sav zsav por sas7bdat sas7bcat xpt",
}
BLOCKED_EXTENSIONS: Final = {
    f".{ext}": category for category, exts in _BLOCKED.items() for ext in exts.split()
}
# Magic numbers at the start of the file.
_MAGIC: Final = (
    (b"PAR1", "columnar"), (b"ARROW1", "columnar"), (b"FEA1", "columnar"),
    (b"Obj\x01", "columnar"), (b"SQLite format 3\x00", "database"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"), (b"PK\x03\x04", "archive"), (b"PK\x05\x06", "archive"),
    (b"PK\x07\x08", "archive"), (b"\x1f\x8b", "archive"), (b"\xfd7zXZ\x00", "archive"),
    (b"\x28\xb5\x2f\xfd", "archive"), (b"7z\xbc\xaf\x27\x1c", "archive"),
    (b"Rar!\x1a\x07", "archive"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "office"),
    (b"\x93NUMPY", "numpy"), (b"RDX2\n", "r"), (b"RDX3\n", "r"), (b"RDA2\n", "r"),
    (b"RDA3\n", "r"), (b"X\n\x00\x00\x00", "r"), (b"<stata_dta>", "stats"),
    (b"$FL2", "stats"), (b"$FL3", "stats"), (b"HEADER RECORD*******LIBRARY", "stats"),
    (b"\x00" * 12 + b"\xc2\xea\x81\x60\xb3\x14\x11\xcf\xbd\x92\x08\x00\x09\xc7\x31\x8c",
     "stats"),
    (b"%PDF-", "pdf"), (b"%!PS", "vector"), (b"\xc5\xd0\xd3\xc6", "vector"),
    (b"\xd7\xcd\xc6\x9a", "vector"),
)  # fmt: skip
# The helper library's evidence sidecars (sdelib.write_table): read by the checker only.
EVIDENCE_SUFFIX: Final = ".evidence.json"
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
MAX_PNG_TEXT: Final = 1024  # bytes of tEXt/zTXt/iTXt; matplotlib writes about 60
_RASTER: Final = (b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM")
_RASTER_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".webp",
                                       ".bmp"})  # fmt: skip
_LOG_EXTENSIONS: Final = frozenset({".log", ".out", ".err", ".stdout", ".stderr"})
_LOG_NAMES: Final = frozenset({"stdout", "stderr", "log"})
_TEXT_EXTENSIONS: Final = frozenset({".txt", ".md"})

# An identifier column: named like one, or shaped like one.
_STRONG_ID_WORDS: Final = frozenset({"nhs", "nhsno", "nhsnumber", "mrn", "pseudonym",
                                     "pseudonyms", "pseudo", "patientid", "personid"})  # fmt: skip
_PERSON_WORDS: Final = frozenset({"patient", "person", "participant", "individual", "subject"})
_KEY_WORDS: Final = frozenset({"id", "ids", "identifier", "key", "no", "number", "ref"})
_BARE_IDS: Final = frozenset({"id", "uid", "uuid", "guid", "pid"})
# Hashes of 32 or more hex digits (pseudonyms are 64; SNOMED and dm+d codes have at most
# 18 digits, so they are not mistaken for hashes) and UUIDs; NHS numbers are tested apart.
_ID_SHAPES: Final = (
    r"[0-9a-fA-F]{32,}",
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
)


def check_file_type(name: str, data: bytes, policy: Policy) -> list[Finding]:
    """F1 for the file ``name`` with contents ``data``: no findings when it may go on to
    its own rules (a short CSV table, a well-formed PNG), ``review`` for files only a
    person can judge, ``fail`` for blocked types and tables that look like microdata."""
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if path.name.lower().endswith(EVIDENCE_SUFFIX):
        return [_fail("This is an evidence file: it holds every cell's true count and the "
                      "largest contributions of single people. The checker reads it; it is "
                      "never released.", detected="evidence")]  # fmt: skip
    category = sniff(data) or BLOCKED_EXTENSIONS.get(suffix)
    if category is not None:
        return [_fail(f"This is {CATEGORIES[category]}. Only tables (CSV), charts (PNG) and "
                      "text can be released.", detected=category, extension=suffix)]  # fmt: skip
    if suffix == ".png":
        return _png(data)
    if suffix in {".csv", ".tsv"}:
        return _csv(data, policy, sep="\t" if suffix == ".tsv" else ",")
    binary = _utf8_error(data) is not None or b"\x00" in data[:8192]
    if suffix in _RASTER_EXTENSIONS or (binary and data.startswith(_RASTER)):
        return [_review("This image is not a PNG drawn by the helper library, so it cannot be "
                        "checked against its data; the checkers must judge it")]  # fmt: skip
    if binary:
        return [_fail("This is neither UTF-8 text nor a binary file the checker recognises, "
                      "so nobody can check what it holds; save text as UTF-8.",
                      extension=suffix)]  # fmt: skip
    if suffix == ".ipynb":
        return [_review("A notebook can hold printed rows and images of data; the checkers "
                        "must read every cell's output")]  # fmt: skip
    if suffix in _LOG_EXTENSIONS or path.name.lower() in _LOG_NAMES:
        return [_review("A log can hold printed rows or values; the checkers must read it")]
    if suffix in _TEXT_EXTENSIONS:
        return [_review("Free text is judged by the checkers")]
    return [_review(f"The checker does not know {suffix or 'extension-less'} files; the "
                    "checkers must judge it", extension=suffix)]  # fmt: skip


def sniff(data: bytes) -> str | None:
    """The blocked category ``data`` belongs to by its content, whatever its name."""
    for magic, category in _MAGIC:
        if data.startswith(magic):
            return category
    if len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "pickle"  # pickle protocols 2-5 open with PROTO
    if any(data[o : o + 8] == b"\x89HDF\r\n\x1a\n" for o in (512, 1024, 2048, 4096)):
        return "hdf5"  # the superblock may sit after a user block
    if data[257:262] == b"ustar" or re.match(rb"BZh[1-9]1AY&SY", data[:10]):
        return "archive"
    if len(data) > 3 and 0x68 <= data[0] <= 0x77 and data[1] in (1, 2) and data[2:4] == b"\x01\x00":
        return "stats"  # Stata before version 13: release, byte order, file type
    if data[:4] == b"\x01\x00\x00\x00" and data[40:44] == b" EMF":
        return "vector"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        if b"<svg" in head:
            return "vector"
        if b"<html" in head or b"<!doctype html" in head:
            return "html"
    return None


def _png(data: bytes) -> list[Finding]:
    """A PNG is a chart (judged by C1) if it is only an image: its chunks must run to the
    end chunk with nothing after it, where another file could be hidden."""
    if not data.startswith(PNG_SIGNATURE):
        return [_fail("This is named .png but is not a PNG image.")]
    position, text = len(PNG_SIGNATURE), 0
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        position += 12 + length
        if kind in {b"tEXt", b"zTXt", b"iTXt"}:
            text += length
        if kind == b"IEND" and position <= len(data):
            break
    else:
        return [_fail("This PNG image is cut short or damaged.")]
    trailing = len(data) - position
    if trailing:
        return [_fail(f"This PNG image has {trailing} bytes after its end, where another file "
                      "can be hidden.", trailing_bytes=trailing)]  # fmt: skip
    if text > MAX_PNG_TEXT:
        return [_review(f"This PNG image carries {text} bytes of embedded text; the checkers "
                        "must read it", text_bytes=text)]  # fmt: skip
    return []


def _csv(data: bytes, policy: Policy, sep: str) -> list[Finding]:
    """A CSV is microdata if it has more rows than ``max_csv_rows`` or a column of
    identifiers. Rows are counted from the line breaks when no quoting or blank lines can
    make a line differ from a row, so a huge file is not parsed to be refused."""
    lines = max(data.count(b"\n"), data.count(b"\r")) + (not data.endswith((b"\n", b"\r")))
    simple = not any(s in data for s in (b'"', b"\n\n", b"\r\r", b"\n\r\n"))
    if lines - 1 > policy.max_csv_rows and simple:
        return [_too_long(lines - 1, policy)]
    error = _utf8_error(data)
    if error is not None:
        line = data.count(b"\n", 0, error) + 1
        return [_fail(f"This CSV is not UTF-8 text (byte 0x{data[error]:02x} on line {line}); "
                      "save it as UTF-8.", line=line)]  # fmt: skip
    try:
        if lines - 1 > policy.max_csv_rows:  # quoted line breaks: count the rows properly
            rows = len(_read(data, sep, first_only=True))
            if rows > policy.max_csv_rows:
                return [_too_long(rows, policy)]
        frame = _read(data, sep)
    except pd.errors.EmptyDataError:
        return []
    except (pd.errors.ParserError, ValueError) as error_:
        return [_fail(f"This CSV cannot be read as a table: {error_}")]
    if len(frame) > policy.max_csv_rows:
        return [_too_long(len(frame), policy)]
    if len(frame) < policy.threshold:
        return []
    findings = []
    for column in frame.columns:
        distinct = _identifiers(str(column), frame[column], policy.threshold)
        if distinct:
            findings.append(Finding(
                rule="F1", status=Status.FAIL, column=str(column),
                message=f"This looks like microdata: its {column} column holds {distinct} "
                        "different values that look like identifiers of people.",
                evidence={"rows": len(frame), "distinct": distinct},
            ))  # fmt: skip
    return findings


def _read(data: bytes, sep: str, *, first_only: bool = False) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), sep=sep, dtype=str, keep_default_na=False,
                       encoding="utf-8-sig", usecols=[0] if first_only else None)  # fmt: skip


def _identifiers(name: str, values: pd.Series, threshold: int) -> int:
    """How many identifiers of people the column holds: its distinct non-empty values if
    there are ``threshold`` or more and it is named like an identifier or every value is
    shaped like one (0 otherwise). Distinctness alone would refuse most one-way tables,
    whose dimension (places, practice codes, ages) is all-different too; repeats do not
    clear a column, since rows of events repeat their person."""
    text = values.str.strip()
    text = text[text != ""]
    distinct = int(text.nunique())
    if distinct < threshold:
        return 0
    words = set(re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))
    named = (
        words & _STRONG_ID_WORDS
        or (words & _PERSON_WORDS and words & _KEY_WORDS)
        or name.strip().lower() in _BARE_IDS
    )
    shaped = any(text.str.fullmatch(shape).all() for shape in _ID_SHAPES) or _nhs_numbers(text)
    return distinct if named or shaped else 0


def _nhs_numbers(values: pd.Series) -> bool:
    """Every value a 10-digit NHS number with a valid Modulus 11 check digit."""
    digits = values.str.replace(r"[ -]", "", regex=True)
    if not digits.str.fullmatch(r"\d{10}").all():
        return False
    array = np.frombuffer("".join(digits).encode(), dtype=np.uint8).reshape(-1, 10) - 48
    check = (11 - (array[:, :9].astype(int) @ np.arange(10, 1, -1)) % 11) % 11
    return bool((check == array[:, 9]).all())


def _utf8_error(data: bytes) -> int | None:
    """The offset of the first byte that is not UTF-8, decoding in blocks so that a large
    file is never held twice."""
    decoder, view, block = codecs.getincrementaldecoder("utf-8")(), memoryview(data), 1 << 20
    for start in range(0, len(data), block):
        pending = len(decoder.getstate()[0])  # bytes of a character split across blocks
        try:
            decoder.decode(view[start : start + block], final=start + block >= len(data))
        except UnicodeDecodeError as error:
            return start - pending + error.start
    return None


def _too_long(rows: int, policy: Policy) -> Finding:
    return _fail(f"This looks like microdata: it has {rows} rows, more than the "
                 f"{policy.max_csv_rows} an aggregate table may have.",
                 rows=rows, limit=policy.max_csv_rows)  # fmt: skip


def _fail(message: str, **evidence: object) -> Finding:
    return Finding(rule="F1", status=Status.FAIL, message=message, evidence=evidence)


def _review(message: str, **evidence: object) -> Finding:
    return Finding(rule="F1", status=Status.REVIEW, message=message, evidence=evidence)
