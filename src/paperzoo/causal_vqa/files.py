"""Reading real results for `paperzoo vqa-flips`: the standard VQA formats.

results:      [{"question_id": int, "answer": str}, ...]     (one file for the originals, one for the edited)
annotations:  {"annotations": [{"question_id": int, "answers": [{"answer": str}, ...],
                                "original_question_id": int (edited questions only)}, ...]}
mapping:      optional {"<edited question_id>": <original question_id>} (else `original_question_id` above)

Files are UTF-8 JSON. A question id appears once per file: a repeated id (or a repeated key of any JSON object)
is refused, not resolved by letting the last one win.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from paperzoo.causal_vqa.metrics import Pair
from paperzoo.errors import DataError, UserError

RESULTS_FORMAT = 'the VQA results format [{"question_id": ..., "answer": ...}]'
ANNOTATIONS_FORMAT = '{"annotations": [{"question_id": ..., "answers": [{"answer": ...}, ...]}, ...]}'
MAPPING_FORMAT = '{"<edited question_id>": <original question_id>, ...}'


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _RepeatedKey(", ".join(repr(k) for k, n in Counter(k for k, _ in pairs).items() if n > 1))
    return out


def _load(path: Path, what: str):
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} file {path} is a folder; pass the JSON file itself")
    try:
        return json.loads(path.read_bytes(), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise DataError(f"{what} file {path} does not exist") from None
    except OSError as e:
        raise DataError(f"{what} file {path} cannot be read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{what} file {path} is not UTF-8 text (byte {e.start}: {e.reason}); "
                        "save it as UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{what} file {path} is not valid JSON: {e}") from None
    except _RepeatedKey as e:
        raise DataError(f"{what} file {path} repeats the key(s) {e} within one JSON object; "
                        "keep one value per key") from None


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _records(value, path: Path, where: str, keys: tuple[str, ...], expected: str) -> list[dict]:
    """`value` (found at JSON path `where`, "" for the whole file) as a list of JSON objects that each have `keys`;
    else a DataError naming the first bad entry."""
    if not isinstance(value, list):
        raise DataError(f"{path}: {where or 'the file'} is {_json_type(value)}, not a list; expected {expected}")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise DataError(f"{path}: {where}[{i}] is {_json_type(row)}, not an object; expected {expected}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise DataError(f"{path}: {where}[{i}] has no {', '.join(map(repr, missing))}; expected {expected}")
    return value


def _question_id(value, path: Path, where: str) -> int:
    """An integer question id: a JSON integer, or a string of one (as the keys of a mapping are)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    raise DataError(f"{path}: {where} is {value!r}, not an integer question id; VQA question ids are integers")


def _refuse_repeats(ids: list[int], path: Path, what: str) -> None:
    repeated = sorted(q for q, n in Counter(ids).items() if n > 1)
    if repeated:
        shown = ", ".join(map(str, repeated[:10])) + (f" (and {len(repeated) - 10} more)" if len(repeated) > 10
                                                      else "")
        raise DataError(f"{path}: question id(s) {shown} appear more than once in the {what}; each question needs "
                        "exactly one entry: remove the repeats (was a file concatenated twice?)")


def read_results(path: Path) -> dict[int, str]:
    """A VQA results file (`[{"question_id": ..., "answer": ...}]`) as {question id: answer}; a malformed file or a
    repeated question id is a `DataError` naming the entry."""
    rows = _records(_load(path, "results"), path, "", ("question_id", "answer"), RESULTS_FORMAT)
    ids = [_question_id(r["question_id"], path, f"[{i}].question_id") for i, r in enumerate(rows)]
    _refuse_repeats(ids, path, "results")
    return {qid: str(r["answer"]) for qid, r in zip(ids, rows)}


def read_annotations(path: Path) -> tuple[dict[int, list[str]], dict[int, int]]:
    """(human answers by question id, original question id by edited question id) of an annotations file."""
    data = _load(path, "annotations")
    if not isinstance(data, dict) or "annotations" not in data:
        raise DataError(f"{path}: expected {ANNOTATIONS_FORMAT} (the VQA annotations format)")
    rows = _records(data["annotations"], path, "annotations", ("question_id",), ANNOTATIONS_FORMAT)
    answers: dict[int, list[str]] = {}
    parent: dict[int, int] = {}
    ids = []
    for i, ann in enumerate(rows):
        where = f"annotations[{i}]"
        qid = _question_id(ann["question_id"], path, f"{where}.question_id")
        ids.append(qid)
        given = _records(ann.get("answers", []), path, f"{where}.answers", ("answer",), ANNOTATIONS_FORMAT)
        answers[qid] = [str(a["answer"]) for a in given]
        if "original_question_id" in ann:
            parent[qid] = _question_id(ann["original_question_id"], path, f"{where}.original_question_id")
    _refuse_repeats(ids, path, "annotations")
    return answers, parent


def read_mapping(path: Path) -> dict[int, int]:
    data = _load(path, "mapping")
    if not isinstance(data, dict):
        raise DataError(f"{path}: the mapping is {_json_type(data)}; expected {MAPPING_FORMAT}")
    edited = [_question_id(k, path, "a key") for k in data]
    _refuse_repeats(edited, path, "mapping's keys")
    return {qid: _question_id(v, path, f"the value of key {k!r}") for qid, (k, v) in zip(edited, data.items())}


@dataclass
class Matched:
    pairs: list[Pair]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count


def match_pairs(original: dict[int, str], edited: dict[int, str], annotations_path: Path,
                mapping_path: Path | None = None) -> Matched:
    """Pair every edited result with its original result and both questions' human answers."""
    answers, parent = read_annotations(annotations_path)
    if mapping_path is not None:
        parent.update(read_mapping(mapping_path))
    matched = Matched([])
    for qid, pred in sorted(edited.items()):
        reason = None
        if qid not in parent:
            reason = "edited id has no original id (no mapping / original_question_id)"
        elif parent[qid] not in original:
            reason = "original id missing from the original results"
        elif qid not in answers or parent[qid] not in answers:
            reason = "no annotation for the edited or original id"
        if reason:
            matched.skipped[reason] = matched.skipped.get(reason, 0) + 1
            continue
        matched.pairs.append(Pair(original[parent[qid]], pred, answers[parent[qid]], answers[qid]))
    if not matched.pairs:
        detail = "; ".join(f"{v} {k}" for k, v in matched.skipped.items())
        raise UserError(f"no edited question matched an original one ({len(edited)} edited results: {detail}); "
                        "check that the files belong together")
    return matched
