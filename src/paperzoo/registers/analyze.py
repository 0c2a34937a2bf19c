"""`paperzoo analyze-vit`: the artifact analysis of Darcet et al. (arXiv 2309.16588, Sec. 2) on a ViT checkpoint,
written as an HTML report: norm histograms per layer, the high-norm map over each image, the probes table and the
last-layer [CLS] attention maps (registers and [CLS] dropped)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from paperzoo.errors import UserError
from paperzoo.registers import figures
from paperzoo.registers.dinov2 import load_dinov2
from paperzoo.registers.images import image_set, normalize
from paperzoo.registers.model import ARCHS
from paperzoo.registers.study import study
from paperzoo.run_folders import WRITES, output_folder, record, release


def add_arguments(parser) -> None:
    parser.add_argument("--weights", required=True, help="local DINOv2-format .pth state dict (nothing downloads)")
    parser.add_argument("--arch", choices=list(ARCHS), help="default: read from the checkpoint (its width)")
    parser.add_argument("--registers", type=int, help="number of register tokens (4 for *_reg files); default: read "
                                                      "from the checkpoint")
    parser.add_argument("--images", help="folder of images (subfolders = classes, enables the class probe); "
                                         "default: the 20 photos bundled with scikit-image and scikit-learn")
    parser.add_argument("--img-size", type=int, default=224, help="images are resized and centre-cropped to this")
    parser.add_argument("--max-images", type=int, default=64, help="a random subset of this many when there are more")
    parser.add_argument("--threshold", type=float, help="fixed high-norm threshold (the paper: 150 for ViT-g); "
                                                        "default: 3x the median norm")
    parser.add_argument("--out", help="output folder (default: a new runs/analyze-vit-<timestamp>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the analysis already in --out")


def _img(path: Path) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}" style="max-width:100%">'


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))


def write_html(path: Path, title: str, values: dict, figure_paths: dict[str, Path]) -> Path:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in values.items())
    sections = "".join(f"<h2>{html.escape(name)}</h2>{_img(p)}" for name, p in figure_paths.items())
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                    f"<body style='font-family:sans-serif;max-width:1100px;margin:auto'><h1>{html.escape(title)}</h1>"
                    f"<h2>Measurements and probes</h2><table border=1 cellpadding=4>{rows}</table>{sections}"
                    "</body></html>\n")
    return path


def run(args) -> int:
    if args.img_size < 1 or args.max_images < 1:
        raise UserError("--img-size and --max-images must be positive")
    if args.registers is not None and args.registers < 0:
        raise UserError(f"--registers must be >= 0, got {args.registers}")
    if args.threshold is not None and not (math.isfinite(args.threshold) and args.threshold > 0):
        raise UserError(f"--threshold must be a finite number > 0, got {args.threshold}")
    model = load_dinov2(args.weights, args.arch, args.registers)
    if args.img_size % model.patch_size:
        raise UserError(f"--img-size {args.img_size} is not a multiple of the patch size {model.patch_size}")
    raw, labels, names = image_set(args.images, args.img_size, args.max_images)
    out = output_folder(args.out, "analyze-vit", args.overwrite)  # locked until written
    try:
        record(out, "analyze-vit", *WRITES["analyze-vit"])
        return _analyze(args, model, raw, labels, names, out)
    finally:
        release(out)


def _analyze(args, model, raw, labels, names, out: Path) -> int:
    s = study(model, normalize(raw), raw, labels, threshold=args.threshold)
    b = len(names)
    count = f"{b} images, {args.img_size} px"
    figs = {
        "Token norms per layer (patch tokens, before the final norm)":
            figures.norm_histograms(out / "norm_histograms.png", {"model": s}, count),
        "High-norm tokens per layer":
            figures.outlier_fraction_curve(out / "outlier_fraction.png", {"model": s}, count),
        "Norm map and high-norm tokens over each image":
            figures.image_maps(out / "outlier_maps.png", raw, {"token norm": s.norms.reshape(b, *s.grid),
                                                              "high-norm": s.outliers.reshape(b, *s.grid)}, count),
        "Last-layer [CLS] attention (mean over heads, prefix tokens dropped)":
            figures.image_maps(out / "attention_maps.png", raw, {"[CLS] attention": s.cls_maps.mean(1)}, count),
        "Probes": figures.probe_bars(out / "probes.png", s.values, count),
        "Neighbour similarity after the patch embedding":
            figures.neighbor_cosine_hist(out / "neighbor_cos.png", s, count),
    }
    figs = {f"{name} ({count})": path for name, path in figs.items()}
    values = {"weights": args.weights, "width": model.embed_dim, "depth": len(model.blocks),
              "registers": model.num_registers, "images": b,
              "image_names": ", ".join(names), **s.values}
    strict = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}  # valid JSON
    (out / "analysis.json").write_text(json.dumps(strict, indent=2, default=str) + "\n")
    report = write_html(out / "report.html", f"analyze-vit: {Path(args.weights).name}", values, figs)
    print(f"{s.values['outlier_tokens']} high-norm tokens ({s.values['outlier_fraction']:.2%}) over {b} images")
    print(f"report: {report}")
    return 0
