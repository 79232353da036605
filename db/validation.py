"""Validation of staged source rows in SQL, and the specs that say what each source file holds.

A reader stages every line (or JSON record) it read as ``(line_no, raw, norm)``: ``norm`` is the line with its
fields joined by a separator. Validation then runs as two set-based passes inside DuckDB, not per row in Python:

1. *row checks* (``check_rows``): column count, empty fields, control characters, number syntax and ranges,
   image-name syntax, and per-file rules such as "crowd share agrees with n_yes / n_no". The first failing check
   is the row's reason.
2. *reference checks* (``check_references``), once every file of the dataset is staged and the set of known
   images is known: image references, duplicate keys, and values that must agree across rows.

Rows whose ``reason`` stays NULL are accepted; the rest go to ``rejects`` with file, line, raw text and reason.

Control characters: in free text (captions, query texts, names) a tab, line feed or carriage return is whitespace
and each run of them is stored as one space (COCO has a caption broken as "cut\\n."), so stored text never
breaks a line or a tab-separated export. Any other control character (NUL, escape, DEL, the C1 range
U+0080-U+009F) rejects the row: it is damage or an attempt to smuggle terminal escapes, and no caption needs one.
Image names admit none at all: each layout's image pattern leaves them out.

Every identifier interpolated into SQL here comes from the specs in this module, never from input data; every
value from input data is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import duckdb

ColumnKind = Literal["image", "caption_key", "text", "int", "float", "id"]

INT_SYNTAX = r"[+-]?\d+(\.0+)?"
FLOAT_SYNTAX = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
CAPTION_KEY_SYNTAX = r"(.+)#(\d+)"
ID_SYNTAX = r"\d{1,18}"  # a non-negative integer that fits a BIGINT, as every reader of the ids can hold it
CONTROL_CHARACTER = r"[\x00-\x1f\x7f-\x9f]"  # RE2 syntax; tab, LF and CR in text are spaces by then
TEXT_WHITESPACE = r"[\t\n\r]+"


@dataclass(frozen=True)
class Column:
    """One column of a source file.

    ``role`` applies to image-bearing kinds: ``define`` adds the image to the dataset's known images,
    ``reference`` requires the image to be known (an unknown one is a reject).
    """

    name: str
    kind: ColumnKind
    role: Literal["define", "reference", None] = None
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()

    @property
    def header_names(self) -> set[str]:
        return {self.name.lower(), *(alias.lower() for alias in self.aliases)}


@dataclass(frozen=True)
class RowRule:
    """A per-row rule on typed columns: ``bad_when`` (SQL over the spec's column names) fails with ``reason``."""

    bad_when: str
    reason: str


@dataclass(frozen=True)
class FileSpec:
    """What one kind of source file holds, how its rows are checked, and where accepted rows go."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[RowRule, ...] = ()
    consistent: tuple[str, str] | None = None  # (key column, value column): the value must agree across rows
    target: str = ""  # name of the INSERT in TARGET_INSERTS

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


IMAGE = "image"
QUERY = "query_id"

EXPERT = FileSpec(
    name="expert",
    columns=(
        Column(IMAGE, "image", "define", aliases=("image_id", "img")),
        Column(QUERY, "caption_key", "reference", aliases=("caption_id", "query")),
        Column("expert_1", "int", minimum=1, maximum=4, aliases=("e1", "expert1")),
        Column("expert_2", "int", minimum=1, maximum=4, aliases=("e2", "expert2")),
        Column("expert_3", "int", minimum=1, maximum=4, aliases=("e3", "expert3")),
    ),
    key=(IMAGE, QUERY),
    target="expert_ratings",
)

CROWD_SHARE_TOLERANCE = 0.005
CROWD = FileSpec(
    name="crowd",
    columns=(
        Column(IMAGE, "image", "define", aliases=("image_id", "img")),
        Column(QUERY, "caption_key", "reference", aliases=("caption_id", "query")),
        Column("share", "float", minimum=0, maximum=1, aliases=("share_yes", "percent_yes")),
        Column("n_yes", "int", minimum=0, aliases=("yes", "yeses")),
        Column("n_no", "int", minimum=0, aliases=("no", "noes")),
    ),
    key=(IMAGE, QUERY),
    rules=(
        RowRule("n_yes + n_no = 0", "no votes: n_yes + n_no = 0"),
        RowRule(
            f"abs(share - n_yes / (n_yes + n_no)) > {CROWD_SHARE_TOLERANCE}",
            "share inconsistent with n_yes / (n_yes + n_no)",
        ),
    ),
    target="crowd_ratings",
)

FLICKR_CAPTIONS = FileSpec(
    name="flickr_captions",
    columns=(Column("caption_id", "caption_key", "define"), Column("text", "text")),
    key=("caption_id",),
    target="captions_by_key",
)

SPLIT_LIST = FileSpec(
    name="split_list",
    columns=(Column(IMAGE, "image", "define", aliases=("image_id", "file", "filename")),),
    key=(IMAGE,),
    target="image_facts_split",
)

WITHSENSE_TRAIN = FileSpec(
    name="withsense_train",
    columns=(
        Column(IMAGE, "image", "define", aliases=("image_id", "img")),
        Column(QUERY, "caption_key", "reference", aliases=("caption_id", "query")),
        Column("query_text", "text", aliases=("text", "caption", "query")),
    ),
    key=(IMAGE, QUERY),
    consistent=(QUERY, "query_text"),
    target="query_pairs",
)

WITHSENSE_TEST_QUERIES = FileSpec(
    name="withsense_test_queries",
    columns=(
        Column(QUERY, "caption_key", "reference", aliases=("caption_id", "query")),
        Column("query_text", "text", aliases=("text", "caption")),
        Column(IMAGE, "image", "define", aliases=("image_id", "img")),
    ),
    key=(QUERY,),
    target="query_pairs",
)

COCO_IMAGES = FileSpec(
    name="coco_images",
    columns=(
        Column(IMAGE, "id", "define"),
        Column("file_name", "text"),
        Column("width", "int", minimum=1),
        Column("height", "int", minimum=1),
    ),
    key=(IMAGE,),
    rules=(
        # The path of a missing photo is images/<split>/<file_name>: it must not lead into another folder.
        RowRule(r"regexp_matches(file_name__raw, '[/\\]') OR file_name__raw IN ('.', '..')",
                "file_name must be a file name, without folders"),
    ),
    target="image_facts_coco",
)

COCO_CATEGORIES = FileSpec(
    name="coco_categories",
    columns=(Column("category_id", "id"), Column("category", "text"), Column("supercategory", "text")),
    key=("category_id",),
    target="none",  # checked and counted only: each object row carries its category's names
)

COCO_CAPTIONS = FileSpec(
    name="coco_captions",
    columns=(Column(IMAGE, "id", "reference"), Column("caption_id", "id"), Column("text", "text")),
    key=("caption_id",),
    target="captions_coco",
)

COCO_OBJECTS = FileSpec(
    name="coco_objects",
    columns=(
        Column(IMAGE, "id", "reference"),
        Column("annotation_id", "id"),
        Column("category", "text"),
        Column("supercategory", "text"),
    ),
    key=("annotation_id",),
    target="objects",
)


# ----------------------------------------------------------------------------------------------- SQL building
def _typed_expr(column: Column) -> str:
    """The number in a column; NULL when its syntax is wrong (reported by the checks)."""
    raw = f"{column.name}__raw"
    if column.kind == "int":
        return f"CASE WHEN regexp_full_match({raw}, '{INT_SYNTAX}') THEN TRY_CAST(TRY_CAST({raw} AS DOUBLE) AS BIGINT) END"
    return f"CASE WHEN regexp_full_match({raw}, '{FLOAT_SYNTAX}') THEN TRY_CAST({raw} AS DOUBLE) END"


def _column_checks(column: Column) -> list[tuple[str, str]]:
    """(bad_when, reason SQL) pairs for one column, in the order they are tried."""
    name, raw = column.name, f"{column.name}__raw"
    quoted = f"'\"' || {raw} || '\"'"
    checks: list[tuple[str, str]] = [(f"{raw} = ''", f"'empty {name}'")]
    if column.kind == "text":  # every other kind has a syntax of its own that admits no control character
        checks.append((
            f"regexp_matches({raw}, '{CONTROL_CHARACTER}')",
            f"CASE WHEN strpos({raw}, chr(0)) > 0 THEN 'NUL character in {name}' ELSE 'control character U+' || "
            f"printf('%04X', unicode(regexp_extract({raw}, '{CONTROL_CHARACTER}'))) || ' in {name}' END",
        ))
    if column.kind == "image":
        checks.append(
            (f"NOT regexp_full_match({raw}, $image_pattern)", f"'{name} ' || {quoted} || ' is not a valid image name (' || $image_rule || ')'")
        )
    elif column.kind == "caption_key":
        checks.append(
            (f"NOT regexp_full_match({raw}, '{CAPTION_KEY_SYNTAX}')", f"'{name} ' || {quoted} || ' is not of the form <image>#<n>'")
        )
        checks.append(
            (
                f"NOT regexp_full_match({column.name}__image, $image_pattern)",
                f"'{name} ' || {quoted} || ' names an invalid image (' || $image_rule || ')'",
            )
        )
    elif column.kind == "id":
        checks.append((f"NOT regexp_full_match({raw}, '{ID_SYNTAX}')",
                       f"'{name} ' || {quoted} || ' is not a numeric id of at most 18 digits'"))
    elif column.kind in ("int", "float"):
        what = "an integer" if column.kind == "int" else "a number"
        checks.append((f"{name} IS NULL", f"'{name} ' || {quoted} || ' is not {what}'"))
        low, high = column.minimum, column.maximum
        if low is not None and high is not None:
            checks.append((f"NOT ({name} BETWEEN {low} AND {high})", f"'{name} ' || {raw} || ' out of range {low:g}..{high:g}'"))
        elif low is not None:
            checks.append((f"{name} < {low}", f"'{name} ' || {raw} || ' below minimum {low:g}'"))
    return checks


def row_check_sql(spec: FileSpec, stage: str, table: str) -> str:
    """CREATE a temp ``table`` of typed rows of ``stage`` with the first failing row check as ``reason``."""
    n = len(spec.columns)
    raws = ", ".join(
        f"trim(regexp_replace(f[{i + 1}], '{TEXT_WHITESPACE}', ' ', 'g')) AS {c.name}__raw" if c.kind == "text"
        else f"trim(f[{i + 1}]) AS {c.name}__raw"
        for i, c in enumerate(spec.columns)
    )
    # The image part of a caption key <image>#<n>: text before the last '#' (string functions, not a regex).
    raws += "".join(
        f", left({c.name}__raw, length({c.name}__raw) - strpos(reverse({c.name}__raw), '#')) AS {c.name}__image"
        for c in spec.columns if c.kind == "caption_key"
    )
    typed = "".join(
        f", {_typed_expr(c)} AS {c.name}" for c in spec.columns if c.kind in ("int", "float")
    )
    branches = [
        ("raw = ''", "'empty line'"),
        (f"len(f) <> {n}", f"'expected {n} columns ({', '.join(spec.column_names)}), found ' || len(f)"),
    ]
    for column in spec.columns:
        branches.extend(_column_checks(column))
    branches.extend((rule.bad_when, f"'{rule.reason}'") for rule in spec.rules)
    case = "\n".join(f"        WHEN {cond} THEN {reason}" for cond, reason in branches)
    return f"""
CREATE OR REPLACE TEMP TABLE {table} AS
WITH split AS (
    SELECT line_no, raw, string_split(norm, $separator) AS f FROM {stage}
), fields AS (
    SELECT line_no, raw, f, {raws} FROM split
), typed AS (
    SELECT *{typed} FROM fields
)
SELECT * EXCLUDE (f), CASE
{case}
    END AS reason
FROM typed
"""


def _image_of(column: Column) -> str:
    """SQL for the image name a column points at."""
    return f"{column.name}__image" if column.kind == "caption_key" else f"{column.name}__raw"


def defined_images_sql(spec: FileSpec, table: str) -> str | None:
    """SELECT of image names that accepted-so-far rows of ``table`` define, or None when the spec defines none."""
    selects = [
        f"SELECT {_image_of(c)} AS name FROM {table} WHERE reason IS NULL"
        for c in spec.columns
        if c.role == "define"
    ]
    return " UNION ".join(selects) if selects else None


def reference_check_sql(spec: FileSpec, table: str) -> str:
    """Statements that add reasons to still-accepted rows of ``table``, in order: unknown images, duplicate
    keys (the first occurrence stays), values that must agree across rows. Window functions only run on the
    rows of repeated keys, so a clean million-row file costs one hash aggregate per check."""
    statements = []
    refs = [c for c in spec.columns if c.role == "reference"]
    if refs:
        unknown = " OR ".join(f"{_image_of(c)} NOT IN (SELECT name FROM known_images)" for c in refs)
        case = " ".join(
            f"WHEN {_image_of(c)} NOT IN (SELECT name FROM known_images) "
            f"THEN '{c.name} \"' || {c.name}__raw || '\" refers to an unknown image'"
            for c in refs
        )
        statements.append(f"UPDATE {table} SET reason = CASE {case} END WHERE reason IS NULL AND ({unknown})")
    key = ", ".join(f"{k}__raw" for k in spec.key)
    statements.append(f"""
UPDATE {table} AS t SET reason = d.reason FROM (
    SELECT line_no, row_number() OVER w AS n,
           CASE WHEN raw = first_value(raw) OVER w THEN 'duplicate of line ' || first_value(line_no) OVER w
                ELSE 'duplicate key ({", ".join(spec.key)}) with different values; first at line '
                     || first_value(line_no) OVER w END AS reason
    FROM {table}
    SEMI JOIN (SELECT {key} FROM {table} WHERE reason IS NULL GROUP BY ALL HAVING count(*) > 1) USING ({key})
    WHERE reason IS NULL
    WINDOW w AS (PARTITION BY {key} ORDER BY line_no)
) AS d
WHERE t.line_no = d.line_no AND d.n > 1""")
    if spec.consistent:
        ckey, cvalue = (f"{name}__raw" for name in spec.consistent)
        statements.append(f"""
UPDATE {table} AS t SET reason = d.reason FROM (
    SELECT line_no, {cvalue} <> first_value({cvalue}) OVER w AS differs,
           '{spec.consistent[0]} "' || {ckey} || '" has a different {spec.consistent[1]} at line '
           || first_value(line_no) OVER w AS reason
    FROM {table}
    SEMI JOIN (SELECT {ckey} FROM {table} WHERE reason IS NULL GROUP BY ALL
               HAVING count(DISTINCT {cvalue}) > 1) USING ({ckey})
    WHERE reason IS NULL
    WINDOW w AS (PARTITION BY {ckey} ORDER BY line_no)
) AS d
WHERE t.line_no = d.line_no AND d.differs""")
    return ";\n".join(statements)


# ------------------------------------------------------------------------------------------- accepted rows go to
# Each takes the checked table's accepted rows; $dataset, $source and $split are bound parameters.
TARGET_INSERTS: dict[str, str] = {
    "none": "",
    "expert_ratings": """
INSERT INTO expert_ratings
SELECT $dataset, $dataset || '/' || image__raw, $dataset || '/' || query_id__raw, expert_1, expert_2, expert_3
FROM {table} WHERE reason IS NULL""",
    "crowd_ratings": """
INSERT INTO crowd_ratings
SELECT $dataset, $dataset || '/' || image__raw, $dataset || '/' || query_id__raw, share, n_yes, n_no
FROM {table} WHERE reason IS NULL""",
    "captions_by_key": """
INSERT INTO captions
SELECT $dataset || '/' || caption_id__raw, $dataset,
       $dataset || '/' || caption_id__image, text__raw, $source
FROM {table} WHERE reason IS NULL""",
    "image_facts_split": """
INSERT INTO image_facts (name, split) SELECT image__raw, $split FROM {table} WHERE reason IS NULL""",
    "query_pairs": """
INSERT INTO query_pairs
SELECT $dataset, $dataset || '/' || image__raw, $dataset || '/' || query_id__raw, $split
FROM {table} WHERE reason IS NULL;
INSERT INTO captions
SELECT $dataset || '/' || query_id__raw, $dataset,
       $dataset || '/' || any_value(query_id__image), any_value(query_text__raw), $source
FROM {table} WHERE reason IS NULL
  AND $dataset || '/' || query_id__raw NOT IN (SELECT id FROM captions)
GROUP BY query_id__raw""",
    "image_facts_coco": """
INSERT INTO image_facts (name, path, split, width, height)
SELECT image__raw, $image_dir || '/' || file_name__raw, $split, width, height FROM {table} WHERE reason IS NULL""",
    "captions_coco": """
INSERT INTO captions
SELECT $dataset || '/' || caption_id__raw, $dataset, $dataset || '/' || image__raw, text__raw, $source
FROM {table} WHERE reason IS NULL""",
    "objects": """
INSERT INTO objects
SELECT $dataset, $dataset || '/' || image__raw, category__raw, any_value(supercategory__raw), count(*)
FROM {table} WHERE reason IS NULL
GROUP BY image__raw, category__raw
ON CONFLICT (image_id, category) DO UPDATE SET n_instances = objects.n_instances + excluded.n_instances""",
}

TARGET_PARAMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "expert_ratings": ("dataset",),
    "crowd_ratings": ("dataset",),
    "captions_by_key": ("dataset", "source"),
    "image_facts_split": ("split",),
    "query_pairs": ("dataset", "split", "source"),
    "image_facts_coco": ("split", "image_dir"),
    "captions_coco": ("dataset", "source"),
    "objects": ("dataset",),
}


@dataclass
class CheckedFile:
    """A staged file after the row checks: where its rows are and how to account for them."""

    spec: FileSpec
    file: str
    table: str
    params: dict[str, str] = field(default_factory=dict)
    python_rejects: list[tuple[int | None, str | None, str]] = field(default_factory=list)  # (line, raw, reason)
    header: bool = False


def run(cur: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object]) -> None:
    """Execute one or more ``;``-separated statements, each with the named parameters it uses."""
    for statement in (s for s in sql.split(";\n") if s.strip()):
        used = {k: v for k, v in params.items() if f"${k}" in statement}
        cur.execute(statement, used)
