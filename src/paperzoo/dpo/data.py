"""Preference data: JSONL rows {"prompt", "chosen", "rejected"}, tokenized once into padded id tensors.

Layout of every sequence: [BOS] prompt completion [EOS] padding, right-padded. BOS is added once (only when the
tokenizer has one and the prompt does not already start with it), EOS once at the end of each completion.
Truncation keeps the end of the prompt (at most `max_prompt_length` tokens, BOS kept) and then cuts the
completion to the room left, so a completion is never emptied: `max_prompt_length < max_length` is required.
A `completion_mask` marks the completion tokens: only they are scored (prompt and padding are masked).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from paperzoo.errors import ConfigError, DataError

FIELDS = ("prompt", "chosen", "rejected")


def read_jsonl(path: str | Path, what: str, example: str) -> list[tuple[str, object]]:
    """(`path:line`, parsed value) of every non-blank line of a UTF-8 JSONL file; a missing, unreadable or empty
    file, or a line that is not JSON, is a DataError naming the file (and the line)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} file {path} is a folder; pass the JSONL file itself")
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        number = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{number}: not UTF-8 text (byte {e.start}: {e.reason}); save the file as UTF-8") \
            from None
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    if not rows:
        raise DataError(f"{what} file {path} holds no rows; write one JSON object per line, e.g. {example}")
    return rows


def read_preferences(path: str | Path) -> list[dict]:
    """Rows of a JSONL file, each with string fields prompt, chosen, rejected (others are ignored)."""
    rows = read_jsonl(path, "preference", '{"prompt": "...", "chosen": "...", "rejected": "..."}')
    for where, row in rows:
        check_row(row, where)
    return [row for _, row in rows]


def check_row(row, where: str, fields=FIELDS) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a preference row must be a JSON object with {', '.join(fields)}")
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{where}: missing field {', '.join(map(repr, missing))} (a row needs {', '.join(fields)})")
    wrong = [f for f in fields if not isinstance(row[f], str)]
    if wrong:
        raise DataError(f"{where}: field {wrong[0]!r} must be a string, got {type(row[wrong[0]]).__name__}")


def check_tokenizer(tokenizer) -> None:
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ConfigError("the tokenizer has no pad token: set one first, e.g. tokenizer.pad_token = "
                          "tokenizer.eos_token (what TRL does for GPT-2)")


def check_lengths(max_length: int, max_prompt_length: int) -> None:
    if max_prompt_length < 1 or max_length <= max_prompt_length:
        raise ConfigError(f"need 1 <= max_prompt_length < max_length so that a completion keeps at least one "
                          f"token; got max_prompt_length={max_prompt_length}, max_length={max_length}")


def encode_pair_side(tokenizer, prompt: str, completion: str, max_length: int, max_prompt_length: int,
                     where: str) -> tuple[list[int], int]:
    """(ids, number of prompt tokens) of [BOS] prompt completion [EOS], truncated as the module docstring says."""
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    p = list(tokenizer.encode(prompt, add_special_tokens=False))
    if bos is not None and (not p or p[0] != bos):
        p = [bos, *p]
    if not p:
        raise DataError(f"{where}: empty prompt and the tokenizer has no BOS token, so the first completion "
                        "token would have nothing to be predicted from")
    c = list(tokenizer.encode(completion, add_special_tokens=False))
    if not c or c == [eos]:
        raise DataError(f"{where}: the completion is empty after tokenization")
    if eos is not None and c[-1] != eos:
        c.append(eos)
    if len(p) > max_prompt_length:  # keep the end of the prompt, next to the completion
        p = [bos, *p[len(p) - max_prompt_length + 1:]] if bos is not None else p[len(p) - max_prompt_length:]
    c = c[:max_length - len(p)]  # at least one token is left: max_prompt_length < max_length
    return p + c, len(p)


def pad_sequences(sequences: list[tuple[list[int], int]], pad_id: int, length: int | None = None):
    """(ids, attention_mask, completion_mask), each (N, T), from (ids, n_prompt) pairs; right padding."""
    length = length or max(len(ids) for ids, _ in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention = torch.zeros(len(sequences), length, dtype=torch.long)
    completion = torch.zeros(len(sequences), length, dtype=torch.long)
    for i, (seq, n_prompt) in enumerate(sequences):
        ids[i, :len(seq)] = torch.tensor(seq)
        attention[i, :len(seq)] = 1
        completion[i, n_prompt:len(seq)] = 1
    return ids, attention, completion


class PreferencePairs(Dataset):
    """Tokenized pairs: `input_ids`, `attention_mask`, `completion_mask` each (N, 2, T) with [chosen, rejected]
    along dim 1; after `set_reference_logps`, also `reference_logps` (N, 2)."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor):
        if input_ids.ndim != 3 or input_ids.shape[1] != 2:
            raise ValueError(f"input_ids must be (N, 2, T), got {tuple(input_ids.shape)}")
        if not (input_ids.shape == attention_mask.shape == completion_mask.shape):
            raise ValueError("input_ids, attention_mask and completion_mask must have one shape")
        if bool((completion_mask.sum(-1) == 0).any()):
            raise DataError("a pair has an empty completion")
        self.tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}

    @classmethod
    def from_rows(cls, rows: list[dict], tokenizer, max_length: int = 512, max_prompt_length: int = 256,
                  source: str = "row") -> "PreferencePairs":
        check_tokenizer(tokenizer)
        check_lengths(max_length, max_prompt_length)
        sides = []
        for number, row in enumerate(rows, start=1):
            where = f"{source} {number}"
            check_row(row, where)
            for name in ("chosen", "rejected"):
                sides.append(encode_pair_side(tokenizer, row["prompt"], row[name], max_length, max_prompt_length,
                                              f"{where} ({name!r})"))
        ids, attention, completion = pad_sequences(sides, tokenizer.pad_token_id)  # (2N, T)
        shape = (len(rows), 2, ids.shape[1])
        return cls(ids.view(shape), attention.view(shape), completion.view(shape))

    def set_reference_logps(self, logps: torch.Tensor) -> None:
        if logps.shape != (len(self), 2):
            raise ValueError(f"reference log-probs must be ({len(self)}, 2), got {tuple(logps.shape)}")
        self.tensors["reference_logps"] = logps.detach().float().cpu()

    def subset(self, index) -> "PreferencePairs":
        out = PreferencePairs(*(self.tensors[k][index] for k in ("input_ids", "attention_mask", "completion_mask")))
        if "reference_logps" in self.tensors:
            out.set_reference_logps(self.tensors["reference_logps"][index])
        return out

    def __len__(self) -> int:
        return len(self.tensors["input_ids"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class Sequences(Dataset):
    """Single sequences for SFT (or prompts for RL): `input_ids`, `attention_mask`, `completion_mask` (N, T)."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor):
        if input_ids.ndim != 2 or not (input_ids.shape == attention_mask.shape == completion_mask.shape):
            raise ValueError("Sequences wants three (N, T) tensors of one shape")
        self.tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}

    def __len__(self) -> int:
        return len(self.tensors["input_ids"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns that no sequence of this batch uses (datasets are padded to their longest row)."""
    length = int(batch["attention_mask"].sum(-1).max())
    return {k: (v[..., :length] if k != "reference_logps" else v) for k, v in batch.items()}
