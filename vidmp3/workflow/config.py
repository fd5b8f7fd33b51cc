"""The workflow's config and its two sheets, validated against the JSON schemas in config/schemas/.

Validation fills in each key's schema default, refuses unknown keys, and reports every problem as
an `InputError` that names the file, the row or key, and what is wrong. The Snakefile calls these
at parse time, so a bad sheet stops the run before any job starts.
"""

from __future__ import annotations

import copy
import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from jsonschema import Draft202012Validator, validators

from vidmp3.errors import InputError
from vidmp3.subjects import check_edit_subjects, check_video_subjects, parse_scales, parse_subjects

ID_PATTERN = "[a-z0-9][a-z0-9-]*"


def _with_defaults(validator_class):
    """A validator that writes each property's `default` into the instance before checking it."""
    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema(schema_dir: str | os.PathLike, name: str) -> dict[str, Any]:
    return yaml.safe_load((Path(schema_dir) / f"{name}.schema.yaml").read_text())


def _first_error(instance: dict[str, Any], schema: dict[str, Any]):
    return next(iter(sorted(_DefaultingValidator(schema).iter_errors(instance), key=lambda e: e.path)), None)


def validate(instance: dict[str, Any], schema: dict[str, Any], where: str) -> dict[str, Any]:
    """Return a copy of `instance` with defaults filled in; raise InputError on the first problem."""
    filled = copy.deepcopy(instance)
    error = _first_error(filled, schema)
    if error is not None:
        key = "/".join(str(p) for p in error.absolute_path)
        raise InputError(f"{where}{': ' + key if key else ''}: {error.message}")
    return filled


def yaml_line(path: str | os.PathLike, keys: Sequence[str | int]) -> int | None:
    """The line of `keys` (a path of mapping keys and list indices) in a YAML file; None where it is not there."""
    node = yaml.compose(Path(path).read_text())
    line = 1
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(key)]
            if not found:
                return None
            key_node, node = found[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return None
    return line


def load_config(
    config: dict[str, Any],
    schema_dir: str | os.PathLike,
    files: Sequence[str | os.PathLike] = (),
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config with defaults filled in. A problem names where the key was set: the last of the
    config `files` (later ones override earlier ones) that holds it, with its line, or `--config`."""
    schema = load_schema(schema_dir, "config")
    filled = copy.deepcopy(config)
    error = _first_error(filled, schema)
    if error is None:
        return filled
    keys = list(error.absolute_path)
    where = "config"
    if overrides is not None and _holds(overrides, keys):
        where = "--config"
    else:
        for file in reversed(list(files)):
            line = yaml_line(file, keys) if Path(file).is_file() else None
            if line is not None:
                where = f"{file}, line {line}"
                break
    key = "/".join(str(k) for k in keys)
    raise InputError(f"{where}{', key ' + key if key else ''}: {error.message}")


def _holds(mapping: Any, keys: list[str | int]) -> bool:
    for key in keys:
        if isinstance(mapping, dict) and key in mapping:
            mapping = mapping[key]
        elif isinstance(mapping, list) and isinstance(key, int) and key < len(mapping):
            mapping = mapping[key]
        else:
            return False
    return True


def _read_sheet(path: str | os.PathLike, schema: dict[str, Any], id_columns: list[str], allow_empty: bool) -> pd.DataFrame:
    """Read a TSV sheet row by row: empty cells take the schema default, numbers are parsed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: sheet not found")
    with open(path, newline="") as handle:
        lines = list(csv.reader(handle, delimiter="\t"))
    if not lines:
        raise InputError(f"{path}: sheet is empty (no header line)")
    header = [name.strip() for name in lines[0]]
    if len(header) == 1 and " " in header[0].strip():
        raise InputError(
            f"{path}, line 1: the header has no tab; the sheet must be tab-separated (tabs, not spaces, between columns)"
        )
    columns = schema["properties"]
    rows, numbers = [], []
    for number, cells in enumerate(lines[1:], start=2):
        where = f"{path}, line {number}"
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            spaced = len(cells) < len(header) and (len(cells) == 1 or any("  " in cell for cell in cells))
            hint = "; the sheet must be tab-separated (this line seems to separate columns with spaces)" if spaced else ""
            raise InputError(f"{where}: has {len(cells)} tab-separated fields, the header has {len(header)}{hint}")
        row: dict[str, Any] = {}
        for column, cell in zip(header, cells):
            cell = cell.strip()
            if cell == "":
                continue
            kinds = columns.get(column, {}).get("type") or []
            kinds = [kinds] if isinstance(kinds, str) else kinds
            kind = next((kind for kind in kinds if kind in ("integer", "number")), None)
            if kind:
                try:
                    row[column] = int(cell) if kind == "integer" else float(cell)
                except ValueError:
                    if "string" not in kinds:  # a column that takes a number or a word (frames: all)
                        raise InputError(f"{where}: column {column!r}: {cell!r} is not an {kind}") from None
                    row[column] = cell
            else:
                row[column] = cell
        rows.append(validate(row, schema, where))
        numbers.append(number)
    if not rows and not allow_empty:
        raise InputError(f"{path}: sheet has no rows")
    sheet = pd.DataFrame(rows, columns=list(columns))
    sheet.attrs["lines"] = numbers  # each row's line, for the checks across rows and sheets
    duplicated = sheet.duplicated(id_columns, keep=False)
    if duplicated.any():
        names = sorted({"/".join(r) for r in sheet.loc[duplicated, id_columns].itertuples(index=False)})
        raise InputError(f"{path}: duplicate {'/'.join(id_columns)}: {', '.join(names)}")
    return sheet


def load_videos(path: str | os.PathLike, schema_dir: str | os.PathLike) -> pd.DataFrame:
    """The videos sheet, indexed by video id."""
    sheet = _read_sheet(path, load_schema(schema_dir, "videos"), ["video"], allow_empty=False)
    for row in sheet.itertuples():
        width, height = parse_size(row.size)
        if width % 8 or height % 8 or width == 0 or height == 0:
            raise InputError(f"{path}: video {row.video}: size {row.size} must be positive multiples of 8")
    for line, row in zip(sheet.attrs["lines"], sheet.itertuples()):
        where = f"{path}, line {line} (video {row.video})"
        check_video_subjects(
            row.video, parse_subjects(row.subjects, f"{where}, column subjects"), row.prompt, row.masks, row.mask_backend, where
        )
    return sheet.set_index("video", drop=False)


def load_edits(path: str | os.PathLike, videos: pd.DataFrame, schema_dir: str | os.PathLike) -> pd.DataFrame:
    """The edits sheet, indexed by `{video}_{concept}` (the edit's output name)."""
    sheet = _read_sheet(path, load_schema(schema_dir, "edits"), ["video", "concept"], allow_empty=True)
    unknown = sorted(set(sheet["video"]) - set(videos.index))
    if unknown:
        raise InputError(f"{path}: edits name videos that are not in the videos sheet: {', '.join(unknown)}")
    for line, row in zip(sheet.attrs["lines"], sheet.itertuples()):
        where = f"{path}, line {line}"
        video = videos.loc[row.video]
        check_edit_subjects(
            f"{row.video}_{row.concept}",
            parse_subjects(video["subjects"], f"videos sheet, video {row.video}, column subjects"),
            parse_subjects(row.subjects, f"{where}, column subjects"),
            parse_scales(row.subject_scales, f"{where}, column subject_scales"),
            row.prompt,
            where,
        )
    sheet.index = sheet["video"] + "_" + sheet["concept"]
    return sheet


def parse_size(size: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height)."""
    width, height = size.split("x")
    return int(width), int(height)


def check_sheet_paths(videos: pd.DataFrame, sheet: str | os.PathLike, made: set[str]) -> None:
    """Every source and masks path of the videos sheet exists, except those the workflow `made` (rendered clips)."""
    for row in videos.itertuples():
        for column in ("source", "masks"):
            value = getattr(row, column)
            if not value or value in made:
                continue
            path = Path(value)
            problem = (
                "does not exist" if not path.exists() else "is not a folder" if column == "masks" and not path.is_dir() else None
            )
            if problem:
                raise InputError(
                    f"{sheet}: video {row.video}: {column} {value} {problem}; fix the path in column {column} "
                    f"(relative paths start at the working directory {Path.cwd()})"
                )
