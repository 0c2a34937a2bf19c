"""A trained preference-pipeline model out of paperzoo, as Hugging Face folders.

`export_model` writes the model that a `dpo_sft`, `dpo` or `dpo_rl` checkpoint trained (Rafailov et al. 2023,
arXiv 2305.18290), LoRA adapters merged into the weights (Hu et al. 2021, arXiv 2106.09685, Section 4.2), as a
`save_pretrained` folder with its tokenizer: `AutoModelForCausalLM.from_pretrained(folder)` loads it, and so does
`model=folder` of another run. `export_adapter` writes the adapters of a LoRA run alone, as a PEFT adapter folder
(`adapter_config.json`, `adapter_model.safetensors`) for `peft.PeftModel.from_pretrained(base, folder)`, where
`base` is the model the run started from (its `model=`; when that is a checkpoint, export it with `export_model`
first and load the adapters onto that folder).

Command line: `python -m paperzoo.dpo.export CHECKPOINT OUT [--adapter]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paperzoo.config import from_dict
from paperzoo.dpo.adapters import LoRAConfig, with_lora
from paperzoo.dpo.cli import load_weights, load_lm
from paperzoo.dpo.model import TinyGPTConfig
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.errors import UserError

LM_METHODS = ("dpo_sft", "dpo", "dpo_rl")


def _run_config(checkpoint: Path) -> tuple[dict, dict]:
    tensors, meta = read_checkpoint(checkpoint)
    config = meta.get("config", {})
    if config.get("method") not in LM_METHODS:
        raise UserError(f"{checkpoint} is not a checkpoint of a dpo_sft, dpo or dpo_rl run (method "
                        f"{config.get('method')!r})")
    return tensors, meta


def _save(model, tokenizer, folder: Path, what: str) -> Path:
    if not hasattr(model, "save_pretrained") or not hasattr(tokenizer, "save_pretrained"):
        raise UserError(f"{what} is paperzoo's TinyGPT, which has no Hugging Face format: export works for runs "
                        "that started from a Hugging Face model folder")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def export_model(checkpoint: str | Path, folder: str | Path) -> Path:
    """The model of a dpo_sft/dpo/dpo_rl `checkpoint`, adapters merged, with its tokenizer, as a
    `save_pretrained` folder; returns the folder."""
    checkpoint = Path(checkpoint)
    _run_config(checkpoint)
    model, tokenizer = load_lm(str(checkpoint), TinyGPTConfig())
    return _save(model, tokenizer, Path(folder), f"the model of {checkpoint}")


def export_adapter(checkpoint: str | Path, folder: str | Path) -> Path:
    """The LoRA adapters of a dpo_sft/dpo/dpo_rl run's `checkpoint` (and the tokenizer) as a PEFT adapter folder;
    returns the folder."""
    checkpoint = Path(checkpoint)
    tensors, meta = _run_config(checkpoint)
    config = meta["config"]
    lora = from_dict(LoRAConfig, config.get("lora", {}))
    if not lora.r:
        raise UserError(f"{checkpoint} trained every weight (lora.r=0), not adapters: export the whole model "
                        "(export_model, or the command without --adapter)")
    base, tokenizer = load_lm(config["model"], from_dict(TinyGPTConfig, config["tiny"]), (checkpoint.resolve(),))
    model = with_lora(base, lora)
    load_weights(model, tensors, meta, checkpoint, config["model"])
    model.peft_config["default"].base_model_name_or_path = config["model"]
    return _save(model, tokenizer, Path(folder), f"the base model of {checkpoint}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoints/last.safetensors of a dpo_sft, dpo or dpo_rl run")
    parser.add_argument("out", help="the folder to write")
    parser.add_argument("--adapter", action="store_true",
                        help="write the LoRA adapters alone (a PEFT adapter folder) instead of the merged model")


def run(args: argparse.Namespace) -> int:
    export = export_adapter if args.adapter else export_model
    print(export(args.checkpoint, args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paperzoo.dpo.export", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as e:
        print(f"paperzoo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
