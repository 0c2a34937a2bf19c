"""The `paperzoo` command: list | reproduce | compare | train | bench | <method-specific verbs>.

User mistakes (`UserError`) print one line and exit with status 2, and so does a disk that is full, read-only or not
ours to write; Ctrl-C or SIGTERM prints what was kept and exits with 128 + the signal (130, 143); anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path

from paperzoo.errors import UserError
from paperzoo.machine_load import LoadSampler

EXIT_USER_ERROR = 2
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)  # one line, not a traceback
DRY_RUN_STEPS = 2  # reproduce --dry-run: the training steps after each evaluation


def _cmd_list(args, entries) -> int:
    for entry in entries:
        number = f"{entry.post.number:>2}" if entry.post.number else " -"
        print(f"{number}. {entry.post.title}  [paperzoo.{entry.post.module}]  {entry.status}")
        print(f"     {entry.post.paper}")
        for claim in entry.claims:
            print(f"     claim  {claim.id}: {claim.statement}")
        for name, spec in entry.train_methods.items():
            print(f"     train  {name}: {spec.description}")
        for name, verb in entry.cli_verbs.items():
            print(f"     verb   paperzoo {name}: {verb.help}")
    return 0


def _named_paths(values: list[str]) -> dict[str, str]:
    """--weights NAME=PATH ... -> {NAME: PATH}; a malformed or repeated NAME is a `UserError`."""
    named = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights takes NAME=PATH (e.g. vitl14=dinov2_vitl14_pretrain.pth), got {value!r}")
        if name in named:
            raise UserError(f"--weights {name} is given twice")
        named[name] = path
    return named


def _check_inputs(entries, chosen, weights: dict[str, str], images: str | None) -> None:
    """Each chosen paper must take --weights / --images when they are given (a paper's experiments module
    takes them by defining `check_inputs(weights, images)`, which raises a `UserError` for unusable ones, and
    `MIN_IMAGES`, the fewest images its claims can be measured on)."""
    if not weights and images is None:
        return
    for entry, _ in chosen:
        if entry.import_error:
            raise UserError(f"{entry.post.module} failed to import, so its --weights / --images cannot be checked: "
                            f"{entry.import_error}")
        check = getattr(entry.module, "check_inputs", None)
        if check is None:
            takers = [e.post.module for e in entries if hasattr(e.module, "check_inputs")]
            raise UserError(f"{entry.post.module} takes no --weights or --images; name the papers that do: "
                            f"{', '.join(takers)}")
        check(weights, images)
        fewest = getattr(entry.module, "MIN_IMAGES", None)
        if images is not None and fewest:
            from paperzoo.registers.images import folder_files  # the reader of the papers that take images

            found = len(folder_files(images))
            if found < fewest:
                raise UserError(f"--images {images} holds {found} images; {entry.post.module} is measured on at "
                                f"least {fewest}")


def _cmd_reproduce(args, entries) -> int:
    from paperzoo.claims import RunStopped, default_threads, run_selected, select
    from paperzoo.report import report_folder, worker_deaths, write_partial, write_report
    from paperzoo.run_folders import release
    from paperzoo.stopping import Stopped

    chosen = select(entries, args.papers)
    if not any(claims or entry.import_error for entry, claims in chosen):
        raise UserError("no claims to run yet; see `paperzoo list`")
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        raise UserError(f"--jobs and --threads must be >= 1, got --jobs {args.jobs} --threads {args.threads}")
    weights = _named_paths(args.weights)
    _check_inputs(entries, chosen, weights, args.images)
    if args.plan:
        from paperzoo.claims import plan_lines

        print("\n".join(plan_lines(chosen, args.preset, args.seeds, args.jobs)))
        return 0
    if args.dry_run:
        from paperzoo.engine.dry_run import DRY_RUN_ENV

        os.environ[DRY_RUN_ENV] = str(DRY_RUN_STEPS)  # worker processes and a claim's ranks inherit it
        args.seeds = args.seeds or 1
    out = report_folder(args.out, args.overwrite)  # locked until the report is written
    try:
        threads = args.threads or default_threads(args.jobs)
        started = time.perf_counter()
        try:
            with LoadSampler() as load:
                results = run_selected(chosen, args.preset, out, args.seed, progress=not args.no_progress,
                                       seeds=args.seeds, jobs=args.jobs, threads=threads, weights=weights,
                                       images=args.images,
                                       on_results=lambda done: write_partial(done, out, args.preset, args.seed))
        except RunStopped as e:  # keep what finished, say what did not run
            path = write_partial(e.results, out, args.preset, args.seed,
                                 stopped={"signal": e.signum, "not_run": e.not_run})
            raise Stopped(f"{e}; the finished claims are in {path} (\"complete\": false, \"stopped\" names the "
                          "others)", e.signum) from None
        run = {"papers": args.papers, "seeds_per_claim": args.seeds, "jobs": args.jobs, "threads": threads,
               **({"dry_run": DRY_RUN_STEPS} if args.dry_run else {}),
               **({"weights": weights} if weights else {}), **({"images": args.images} if args.images else {}),
               **({"worker_deaths": worker_deaths(results)} if worker_deaths(results) else {}),
               "wall_seconds": round(time.perf_counter() - started, 1), "load_average": load.summary()}
        paths = write_report(results, out, args.preset, args.seed, run)
    finally:
        release(out)
    for r in results:
        print(f"{r.verdict:>15}  {r.id}")
    print(f"report: {paths['html']}  (also {paths['md'].name}, {paths['json'].name})")
    return 1 if any(r.verdict == "error" for r in results) else 0


def _train_folder(args, resuming: bool) -> Path:
    from paperzoo import run_folders

    if args.out:
        return Path(args.out)
    if run_folders.under_torchrun():
        return run_folders.torchrun_folder(f"train-{args.method}")
    if resuming:
        raise UserError("--resume needs the --out of the run to resume")
    return run_folders.new_folder(f"train-{args.method}")


def _train_help(parser: argparse.ArgumentParser, specs: dict, method: str | None) -> str:
    """`paperzoo train --help` (the methods) or `paperzoo train METHOD --help` (its evaluation, and its keys: type,
    default, meaning)."""
    from paperzoo import config, eval_sizes

    if method is None:
        width = max(map(len, specs), default=0)
        parser.epilog = "methods (`paperzoo train METHOD --help` lists a method's keys):\n" + "\n".join(
            f"  {name:<{width}}  {spec.description}" for name, spec in sorted(specs.items()))
        return parser.format_help()
    spec = specs[method]
    parser.usage = f"paperzoo train {method} [KEY=VALUE ...] [--config FILE] [--out OUT] [--resume] [--overwrite]"
    parser.description = f"{method}: {spec.description}"
    parser.epilog = (f"{eval_sizes.help_text(method, spec.config())}\n\nkeys of {method} (KEY=VALUE, as `key (type) = "
                     f"default`; a later value wins: --config, then the KEY=VALUE arguments):\n"
                     f"{config.help_text(spec.config())}")
    return parser.format_help()


def _cmd_train(args, entries) -> int:
    from paperzoo import config, eval_sizes
    from paperzoo.engine import Trainer, dist_env, is_main
    from paperzoo.run_folders import resumed_config

    specs = {name: spec for entry in entries for name, spec in entry.train_methods.items()}
    if args.method is not None and args.method not in specs:
        raise UserError(f"unknown method {args.method!r}; choose from: {', '.join(sorted(specs)) or '(none yet)'}")
    if args.help:
        print(_train_help(args.train_parser, specs, args.method), end="")
        return 0
    if args.method is None:
        raise UserError(f"train needs a METHOD, one of: {', '.join(sorted(specs))} (`paperzoo train --help`)")
    if args.resume and args.overwrite:
        raise UserError("--resume continues a run and --overwrite replaces it: pass one of them")
    if args.config:
        args.overrides = [*config.overrides_from_file(Path(args.config), args.method), *args.overrides]
    spec = specs[args.method]
    args.overrides = eval_sizes.translate(args.method, spec.config, args.overrides)  # eval.examples=N
    restarted = dist_env().restart_count > 0  # an elastic restart continues the run it belongs to
    if args.resume or restarted:
        out = _train_folder(args, resuming=True)
        if args.resume and not ((out / "checkpoints" / "last.safetensors").exists() or (out / "config.json").exists()):
            raise UserError(f"--resume: {out}/config.json does not exist (nor checkpoints/last.safetensors): no run "
                            "to resume there; pass the --out of the run")  # one stopped before a checkpoint restarts
        started = args.resume or (out / "config.json").exists()  # a restart before rank 0 wrote it starts afresh
        cfg = (resumed_config(spec.config, args.method, out, args.overrides) if started
               else config.apply_overrides(spec.config(), args.overrides))
        method = spec.build(cfg)
    else:
        cfg = config.apply_overrides(spec.config(), args.overrides)
        method = spec.build(cfg)  # bad settings and missing data are reported before a run folder exists
        out = _train_folder(args, resuming=False)
    run_config = {"method": args.method, **config.to_dict(cfg)}
    result = Trainer(method, cfg.train, out_dir=out, run_config=run_config, overwrite=args.overwrite,
                     stop_on_signals=True).fit(args.resume)
    if is_main():
        print(" ".join(f"{k}={v:.4g}" for k, v in result.final.items()))
        print(f"run folder: {out}")
    return 0


def _cmd_compare(args, entries) -> int:
    from paperzoo.compare import compare, format_comparison, load_results

    print(format_comparison(compare(load_results(args.a), load_results(args.b)), args.a, args.b))
    return 0


def _cmd_bench(args, entries) -> int:
    from paperzoo import bench

    names, forwarded = args.names, []
    if "--" in names:
        names, forwarded = names[: names.index("--")], names[names.index("--") + 1:]
    if any(name.startswith("-") for name in names):
        raise UserError(f"bench options go before the names and a benchmark's own arguments after `--`: {names}")
    scripts = bench.discover(Path(args.dir)) if Path(args.dir).is_dir() else {}
    if not scripts:
        raise UserError(f"no benchmarks in {args.dir}/; run from the repository root or pass --dir")
    unknown = [name for name in names if name not in scripts]
    if unknown:
        raise UserError(f"unknown benchmark(s) {', '.join(unknown)}; choose from: {', '.join(scripts)}")
    out = bench.results_file(args.out, args.overwrite)  # checked before any benchmark runs
    env = bench.environment()
    rows, runs = bench.run_scripts([scripts[name] for name in names or scripts], forwarded)
    bench.write_results(out, rows, runs, env, [*(["--dir", args.dir] if args.dir != "benchmarks" else []),
                                               *names, *(["--", *forwarded] if forwarded else [])])
    print(f"\n== goals (ratio: median [interquartile range] over interleaved repeats); results in {out}")
    print(bench.table(rows, values=False))
    return 0 if all(run["exit"] == 0 for run in runs.values()) else 1


def build_parser(entries) -> argparse.ArgumentParser:
    from paperzoo.claims import PRESETS

    parser = argparse.ArgumentParser(prog="paperzoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every seed post, its module, claims and methods")
    p = sub.add_parser("reproduce", help="run papers' claims and write a report")
    p.add_argument("papers", nargs="*", help="modules (capsnet) or claim ids; default: all")
    p.add_argument("--preset", choices=PRESETS, default="quick")
    p.add_argument("--out", help="output folder (default: a new runs/reproduce-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace the report already in --out")
    p.add_argument("--seed", type=int, default=0, help="base seed; every claim's seeds derive from it")
    p.add_argument("--seeds", type=int, help="seeds per measurement, one look for every claim (default: each "
                   "claim's sequential plan, first look smoke 1, quick 3, full 5; more seeds only while undecided)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes: papers run on them in parallel (one "
                   "paper alone: its seeds do)")
    p.add_argument("--threads", type=int, help="torch threads per process (default: cores / jobs)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plan", action="store_true", help="print the claims, their planned seeds and the expected "
                                                      "time from the committed results; run nothing")
    p.add_argument("--dry-run", action="store_true",
                   help=f"build every model, data set, schedule and evaluation of the preset on one seed (unless "
                        f"--seeds), training only the first {DRY_RUN_STEPS} steps after each evaluation: a preset's "
                        f"code path checked before a long run; its verdicts are not evidence")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="a local checkpoint for the papers that measure given weights (repeatable), e.g. registers: "
                        "--weights vitl14=dinov2_vitl14_pretrain.pth "
                        "--weights vitl14_reg=dinov2_vitl14_reg4_pretrain.pth")
    p.add_argument("--images", metavar="DIR", help="a folder of images (ImageNet-style: one subfolder per class) for "
                                                  "the papers that take images (registers)")
    p = sub.add_parser("compare", help="what changed between two reproduce runs (verdicts, values beyond intervals)")
    p.add_argument("a", help="results.json of the first run (or its folder)")
    p.add_argument("b", help="results.json of the second run (or its folder)")
    p = sub.add_parser("train", help="train a method with the engine (works under torchrun too)", add_help=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action="store_true",
                   help="show this help; after a METHOD, every key of its configuration with type, default, meaning")
    p.add_argument("method", nargs="?", help="the method to train (`paperzoo train --help` lists them)")
    p.add_argument("overrides", nargs="*", help="dotted key=value config overrides, e.g. train.lr=0.01")
    p.add_argument("--config", metavar="FILE",
                   help="a JSON file of settings, nested as a run's config.json or dotted ({\"train.lr\": 0.01}); "
                        "KEY=VALUE arguments override it")
    p.add_argument("--out", help="run folder (default: a new runs/train-<method>-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint and its own config.json")
    p.add_argument("--overwrite", action="store_true", help="replace the training run already in --out")
    p.set_defaults(train_parser=p)
    p = sub.add_parser("bench", help="run the speed/memory benchmarks in benchmarks/, each in its own process")
    p.add_argument("--dir", default="benchmarks", help="folder of the benchmark scripts")
    p.add_argument("--out", help="results file (default: a new runs/bench-<timestamp>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace the file already at --out")
    p.add_argument("names", nargs=argparse.REMAINDER, metavar="NAME ... [-- ARGS]",
                   help="benchmarks to run (default: all), in this order; ARGS after -- go to each of them")
    for entry in entries:
        for name, verb in entry.cli_verbs.items():
            verb.add_arguments(sub.add_parser(name, help=verb.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    from paperzoo.catalog import load_catalog

    entries = load_catalog()
    args = build_parser(entries).parse_args(argv)
    commands = {"list": _cmd_list, "reproduce": _cmd_reproduce, "compare": _cmd_compare, "train": _cmd_train,
                "bench": _cmd_bench}
    verbs = {name: verb for entry in entries for name, verb in entry.cli_verbs.items()}
    try:
        if args.command in commands:
            return commands[args.command](args, entries)
        return verbs[args.command].run(args)
    except UserError as e:
        print(f"paperzoo: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (`paperzoo compare A B | head`): nothing is wrong
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except (OSError, ValueError):
            pass
        return 0
    except OSError as e:  # the disk, not paperzoo: full, read-only, not ours to write
        if e.errno not in DISK_ERRORS:
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"paperzoo: error: {e.strerror or e}{where}; free some space or choose another --out (what was "
              "written before is kept)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:  # Ctrl-C, or a `Stopped` run (SIGINT/SIGTERM) that says what it kept
        print(f"paperzoo: {e if str(e) else 'interrupted'}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
