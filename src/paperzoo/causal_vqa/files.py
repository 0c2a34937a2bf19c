"""Reading real results for `paperzoo vqa-flips`: the standard VQA formats.

results:      [{"question_id": int, "answer": str}, ...]     (one file for the originals, one for the edited)
annotations:  {"annotations": [{"question_id": int, "answers": [{"answer": str}, ...],
                                "original_question_id": int (edited questions only)}, ...]}
mapping:      optional {"<edited question_id>": <original question_id>} (else `original_question_id` above)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from paperzoo.causal_vqa.metrics import Pair
from paperzoo.errors import DataError, UserError


def _load(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{what} file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{what} file {path} is not valid JSON: {e}") from None


def read_results(path: Path) -> dict[int, str]:
    rows = _load(path, "results")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"question_id", "answer"} <= r.keys()
                                             for r in rows):
        raise DataError(f"{path}: expected the VQA results format [{{\"question_id\": ..., \"answer\": ...}}]")
    return {int(r["question_id"]): str(r["answer"]) for r in rows}


@dataclass
class Matched:
    pairs: list[Pair]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count


def match_pairs(original: dict[int, str], edited: dict[int, str], annotations_path: Path,
                mapping_path: Path | None = None) -> Matched:
    """Pair every edited result with its original result and both questions' human answers."""
    data = _load(annotations_path, "annotations")
    if not isinstance(data, dict) or "annotations" not in data:
        raise DataError(f"{annotations_path}: expected {{\"annotations\": [...]}} (the VQA annotations format)")
    answers: dict[int, list[str]] = {}
    parent: dict[int, int] = {}
    for ann in data["annotations"]:
        qid = int(ann["question_id"])
        answers[qid] = [str(a["answer"]) for a in ann.get("answers", [])]
        if "original_question_id" in ann:
            parent[qid] = int(ann["original_question_id"])
    if mapping_path is not None:
        parent.update({int(k): int(v) for k, v in _load(mapping_path, "mapping").items()})
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
