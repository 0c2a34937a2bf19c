"""Bad input files through the real CLI (issue #22): each ends in one `paperzoo: error: ...` line naming the file and
what was wrong, exit status 2, and no traceback. The files are tiny and every probe stops before any training."""

import json

import numpy as np
import pytest
from PIL import Image

from paperzoo import config
from paperzoo.cli import EXIT_USER_ERROR, main
from paperzoo.dpo.methods import RewardModel
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.engine.checkpoint import save_checkpoint

TINY = TinyGPTConfig(vocab_size=CharTokenizer().vocab_size, context=40, hidden_size=16, layers=1, heads=2)
TINY_ARGS = ["tiny.hidden_size=16", "tiny.layers=1", "tiny.heads=2", "tiny.context=40", "train.device=cpu"]


def user_error(capsys, argv) -> str:
    """The one-line message of a CLI call that must fail as a user error."""
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("paperzoo: error: ") and err.count("\n") == 1, err
    return err


# --- Omniglot folders ------------------------------------------------------------------------------------------------

def omniglot_tree(root, damage):
    """Two alphabets of two characters with two drawings each; `damage` rewrites the bytes of one drawing."""
    for part, alphabet in (("images_background", "Alpha"), ("images_evaluation", "Beta")):
        for c in range(2):
            folder = root / part / alphabet / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            for d in range(2):
                Image.fromarray(np.full((105, 105), 255, np.uint8)).save(folder / f"{c:04d}_{d:02d}.png")
    bad = root / "images_background" / "Alpha" / "character02" / "0001_01.png"
    bad.write_bytes(damage(bad.read_bytes()))


@pytest.mark.parametrize("damage", [lambda png: b"GIF89a not a png", lambda png: png[:len(png) // 2]],
                         ids=["not-png", "truncated-png"])
def test_omniglot_bad_drawing(tmp_path, capsys, damage):
    omniglot_tree(tmp_path / "omniglot", damage)
    err = user_error(capsys, ["train", "protonet", "data.source=omniglot",
                              f"data.omniglot_root={tmp_path / 'omniglot'}", "--out", str(tmp_path / "run")])
    assert "character02/0001_01.png is not a readable PNG drawing" in err
    assert "delete this file, or extract the Omniglot archive again" in err


# --- vqa-flips -------------------------------------------------------------------------------------------------------

def _ann(qid, answer, parent=None):
    return {"question_id": qid, "answers": [{"answer": answer}] * 10,
            **({"original_question_id": parent} if parent is not None else {})}


GOOD = {"original": [{"question_id": 1, "answer": "yes"}], "edited": [{"question_id": 101, "answer": "no"}],
        "annotations": {"annotations": [_ann(1, "yes"), _ann(101, "no", 1)]}, "mapping": {"101": 1}}
BAD_VQA = {  # which file -> (its content, what the message says)
    "non-utf8-results": ("edited", b'[{"question_id": 101, "answer": "s\xed"}]',
                         "edited.json is not UTF-8 text (byte 34: invalid continuation byte); save it as UTF-8 JSON"),
    "non-integer-id": ("original", [{"question_id": "one", "answer": "yes"}],
                       "original.json: [0].question_id is 'one', not an integer question id"),
    "missing-key": ("edited", [{"question_id": 101}], "edited.json: [0] has no 'answer'; expected the VQA results"),
    "list-as-mapping": ("mapping", [[101, 1]], 'mapping.json: the mapping is a list; expected {"<edited question_id>"'),
    "list-annotations": ("annotations", [_ann(1, "yes")], 'annotations.json: expected {"annotations": [{'),
    "missing-answer": ("annotations", {"annotations": [_ann(1, "yes"), {"question_id": 101, "answers": [{}]}]},
                       "annotations.json: annotations[1].answers[0] has no 'answer'"),
    "repeated-results-id": ("edited", [{"question_id": 101, "answer": "no"}, {"question_id": 101, "answer": "yes"}],
                            "edited.json: question id(s) 101 appear more than once in the results"),
    "repeated-annotation-id": ("annotations", {"annotations": [_ann(1, "yes"), _ann(101, "no", 1), _ann(1, "no")]},
                               "annotations.json: question id(s) 1 appear more than once in the annotations"),
    "repeated-mapping-key": ("mapping", b'{"101": 1, "101": 2}',
                             "mapping.json repeats the key(s) '101' within one JSON object"),
}


@pytest.mark.parametrize("which, content, message", BAD_VQA.values(), ids=BAD_VQA)
def test_vqa_flips_bad_file(tmp_path, capsys, which, content, message):
    paths = {name: tmp_path / f"{name}.json" for name in GOOD}
    for name, data in {**GOOD, which: content}.items():
        paths[name].write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    err = user_error(capsys, ["vqa-flips", "--kind", "iv", *(f"--{name}={path}" for name, path in paths.items())])
    assert message in err


def test_vqa_flips_folder_as_a_file(tmp_path, capsys):
    err = user_error(capsys, ["vqa-flips", "--kind", "iv", "--original", str(tmp_path), "--edited", str(tmp_path),
                              "--annotations", str(tmp_path)])
    assert f"results file {tmp_path} is a folder; pass the JSON file itself" in err


# --- DPO -------------------------------------------------------------------------------------------------------------

def fake_checkpoint(path, method, model, module=None):
    """A checkpoint of `method` whose saved config starts from `model`, with TINY's size."""
    save_checkpoint(path, model=module or TinyGPT(TINY), step=1,
                    config={"method": method, "model": str(model), "tiny": config.to_dict(TINY)})
    return path


def test_dpo_non_utf8_data(tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    data.write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    err = user_error(capsys, ["train", "dpo", f"data={data}", *TINY_ARGS, "--out", str(tmp_path / "run")])
    assert f"{data}:1: not UTF-8 text (byte 15: invalid continuation byte); save the file as UTF-8" in err


def test_dpo_rl_empty_prompt_file(tmp_path, capsys):
    reward = fake_checkpoint(tmp_path / "rm.safetensors", "dpo_reward", "tiny",
                             RewardModel(TinyGPT(TINY), TINY.hidden_size))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n")
    err = user_error(capsys, ["train", "dpo_rl", f"reward_model={reward}", f"data={prompts}", *TINY_ARGS,
                              "--out", str(tmp_path / "run")])
    assert f"prompt file {prompts} holds no rows; write one JSON object per line" in err


def test_dpo_checkpoint_that_starts_from_itself(tmp_path, capsys):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    fake_checkpoint(a, "dpo_sft", b)
    fake_checkpoint(b, "dpo", a)
    err = user_error(capsys, ["train", "dpo", f"model={a}", *TINY_ARGS, "--out", str(tmp_path / "run")])
    assert f"checkpoint {a} starts from itself through the `model` of the saved configs: {a} -> {b} -> {a}." in err
