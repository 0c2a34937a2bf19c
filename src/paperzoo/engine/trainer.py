"""The training loop every paper shares: one process, DDP under torchrun, or DataParallel.

A method plugs in with a small object (the `Method` protocol): it builds the model and the training data, computes
the loss of one batch, and evaluates. The trainer owns everything else: sharded deterministic data order,
optimizer and schedule from `TrainConfig`, gradient accumulation (skipping DDP's all-reduce on non-final
micro-steps with `no_sync`), clipping, AMP, NaN/inf detection, metrics averaged over ranks, a progress bar,
atomic checkpoints that are never non-finite, a run folder that a new run does not overwrite unless told to, and
exact resume (every rank's RNG state is saved, so per-rank augmentation streams continue after a resume; under
`torchrun --max-restarts K` restarted workers resume by themselves). With `stop_on_signals` (`paperzoo train`), Ctrl-C
or SIGTERM stops it after the current step with a checkpoint of that step, which `--resume` continues exactly; one
process at a time writes into a run folder (a lock), and `overwrite` removes only the files that a run wrote (the
folder's manifest, see `paperzoo.run_folders`). Under DDP it names the parameters that got
no gradient instead of PyTorch's reduction error, and converts BatchNorm to SyncBatchNorm on request (GPU only). It
never branches on which method it runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from paperzoo.config import at_least, positive, require
from paperzoo.data.samplers import ShardedEpochSampler, epoch_batches
from paperzoo.engine import distributed as D
from paperzoo.engine import fsdp
from paperzoo.engine.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from paperzoo.engine.dry_run import dry_run_skips
from paperzoo import run_folders
from paperzoo.engine.metrics import MetricsLogger, MetricWriter
from paperzoo.errors import ConfigError, UserError
from paperzoo.stopping import StopRequest, Stopped, signal_name


@dataclass
class TrainConfig:
    """How the engine trains: steps, batch, optimizer and schedule, accumulation, precision, parallelism, logging
    and checkpoints. Every method's config holds one as its `train` field (`train.lr=0.01` on the command line)."""

    steps: int = 1000
    """Optimizer steps (each of `accumulation` micro-steps)."""
    batch_size: int = 64
    """Examples per rank and micro-step; the global batch is batch_size x ranks x accumulation."""
    optimizer: Literal["adamw", "adam", "sgd"] = "adam"
    """The optimizer over the model's trainable parameters."""
    lr: float = 1e-3
    """Peak learning rate (after warm-up, before decay)."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw, L2 in the gradient for adam and sgd)."""
    momentum: float = 0.9
    """Momentum of sgd (unused by adam and adamw)."""
    schedule: Literal["constant", "cosine", "step", "exponential"] = "constant"
    """Learning-rate schedule after the warm-up: constant, cosine to 0 at `steps`, step (x lr_decay every
    decay_every steps) or exponential (the same decay, smoothly)."""
    warmup_steps: int = 0
    """Steps of linear warm-up from lr/warmup_steps to lr; 0 = none."""
    decay_every: int = 1000
    """step and exponential schedules: steps over which the rate is multiplied by lr_decay."""
    lr_decay: float = 0.1
    """step and exponential schedules: the factor per decay_every steps."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 = off."""
    accumulation: int = 1
    """Micro-steps per optimizer step (gradients accumulated; DDP syncs only on the last one)."""
    amp: Literal["off", "bf16", "fp16"] = "off"
    """Mixed precision: bf16 autocast (CPU or GPU), fp16 with a loss scaler (CUDA only), or off."""
    parallel: Literal["auto", "ddp", "fsdp", "dp", "none"] = "auto"
    """auto = DDP under torchrun, else one device; fsdp = sharded over torchrun's ranks (FSDP2, each rank holds
    1/N of the weights, gradients and optimizer state; `paperzoo.engine.fsdp`); dp = nn.DataParallel over the
    visible GPUs (one process)."""
    find_unused_parameters: bool = False
    """DDP: allow parameters that get no gradient in a step (slower: DDP searches the graph every step)."""
    sync_batchnorm: bool = False
    """DDP on GPUs: batch statistics over all ranks (SyncBatchNorm)."""
    dist_timeout_s: float = 600.0
    """A dead rank ends the run after this many seconds instead of hanging."""
    device: str = "auto"
    """auto (this rank's GPU if there is one, else the CPU), cpu, cuda or cuda:N."""
    num_workers: int = 0
    """DataLoader worker processes per rank; 0 = load in the training process."""
    drop_last: bool = True
    """Drop each epoch's last incomplete batch."""
    log_every: int = 10
    """Steps between logged training metrics (averaged over the steps and ranks since the last log)."""
    eval_every: int = 0
    """Steps between evaluations; 0 = only at the end."""
    checkpoint_every: int = 0
    """Steps between checkpoints (`checkpoints/last.safetensors`); 0 = only at the end (when there is an output
    folder)."""
    keep_checkpoint_every: int = 0
    """Steps between checkpoints kept as `checkpoints/step-N.safetensors` (N = the step; `last` is written then too);
    each is a full checkpoint: load its weights, or copy it over last.safetensors to resume from it. 0 = none."""
    seed: int = 0
    """Seed of the initialisation (same on every rank), the data order and each rank's augmentation stream."""
    progress: bool = True
    """Show a progress bar (rank 0)."""

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "steps", "batch_size", "accumulation", "log_every", "decay_every")
        at_least(self, prefix, 0, "warmup_steps", "weight_decay", "grad_clip", "eval_every", "checkpoint_every",
                 "keep_checkpoint_every", "num_workers")
        positive(self, prefix, "lr", "lr_decay", "dist_timeout_s")
        require(0 <= self.momentum < 1, prefix + "momentum", self.momentum, "in [0, 1)")
        require(0 <= self.seed < 2**63, prefix + "seed", self.seed, "in [0, 2**63)")
        require(_valid_device(self.device), prefix + "device", self.device, "auto, cpu, cuda, cuda:N or mps")


def _valid_device(name: str) -> bool:
    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda", "mps")
    except (RuntimeError, ValueError):
        return False


@dataclass
class StepOutput:
    """What `Method.training_step` returns: the scalar `loss` (a 0-dim tensor) to minimise, and `metrics`, scalars
    (0-dim tensors or floats) averaged between log steps and logged under their names."""

    loss: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)  # scalars (tensors or floats) averaged between logs


class Method(Protocol):
    """What a paper gives the trainer."""

    def build_model(self) -> nn.Module: ...

    def train_dataset(self) -> Dataset: ...

    def training_step(self, model: nn.Module, batch: Any) -> StepOutput:
        """Loss of one batch; `model` may be wrapped (DDP/DP): call it, do not reach into it."""

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Held-out metrics of the unwrapped model (may return {})."""

    # optional: before_optimizer_step(model) -> dict[str, float], called on every rank once per optimizer step with
    # the finished gradients (all micro-steps, averaged over the ranks; still multiplied by the fp16 loss scale),
    # before clipping; it may change them in place (the same way on every rank) and returns metrics to log
    # optional: parameter_groups(model) -> list of torch.optim parameter groups ({"params": [...], "lr": ...}; a
    # group's lr and weight_decay default to train.lr and train.weight_decay, the schedule scales every group's lr);
    # they must hold every trainable parameter. Or configure_optimizer(model, cfg: TrainConfig) -> a torch.optim
    # Optimizer of the method's choosing (train.optimizer, lr, weight_decay and momentum are then not used; the
    # schedule still is)
    # optional: checkpoint_state(model) -> dict[str, Tensor] | None, the part of the model's state dict that a
    # checkpoint holds (the trainable adapters of a frozen pretrained model); None or absent: all of it


@dataclass
class TrainState:
    """What a callback receives (`paperzoo.engine.callbacks`): the optimizer `step`, the `metrics` of the `phase`
    ("train": a log step's averaged training metrics; "eval": a periodic evaluation's; "final": the final
    evaluation's), the unwrapped `model` and the run folder `out_dir`. Setting `stop = True` ends the run after this
    step (phases "train" and "eval")."""

    step: int
    metrics: dict[str, float]
    phase: Literal["train", "eval", "final"] = "train"
    model: nn.Module | None = None
    out_dir: Path | None = None
    stop: bool = False


@dataclass
class TrainResult:
    """The outcome of `Trainer.fit`: the trained (unwrapped) `model`, the `steps` trained, the `final` evaluation
    metrics, the `history` of logged metrics (`history.series("train", "loss")`) and the run folder `out_dir`."""

    model: nn.Module
    steps: int
    final: dict[str, float]
    history: MetricsLogger
    out_dir: Path | None


class NonFiniteLossError(UserError):
    pass


class UnusedParametersError(UserError):
    """DDP found parameters that received no gradient while train.find_unused_parameters is off."""


def _unused_message(names: list[str], step: int) -> str:
    """`names` empty: DDP noticed it, not us (run with TORCH_DISTRIBUTED_DEBUG=DETAIL to have PyTorch name them)."""
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    which = f"{len(names)} parameter(s)" if names else "some parameters"
    shown = shown or "(TORCH_DISTRIBUTED_DEBUG=DETAIL makes PyTorch name them)"
    return (f"DDP: {which} received no gradient in step {step}: {shown}. DDP all-reduces a "
            "gradient for every parameter, so it would fail or hang at the next step. Set "
            "train.find_unused_parameters=true (DDP then searches the graph every step, a little slower), or use "
            "these parameters in the loss, or freeze them (requires_grad=False)")


def move_to(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.schedule == "cosine":
            progress = min(1.0, step / max(1, cfg.steps))
            return warm * 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.schedule == "step":
            return warm * cfg.lr_decay ** (step // cfg.decay_every)
        if cfg.schedule == "exponential":
            return warm * cfg.lr_decay ** (step / cfg.decay_every)
        return warm

    return factor


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    """Train a `Method` under a `TrainConfig`: `Trainer(method, cfg, out_dir="runs/x").fit()` -> `TrainResult`.

    The same code runs in one process, under `torchrun` (DDP, one rank per process) and with `parallel=dp`.
    `out_dir`: the run folder (config.json, metrics.jsonl/csv, checkpoints/last.safetensors; only rank 0 writes);
    None trains without writing anything. `run_config`: the JSON saved as config.json (default: the TrainConfig).
    `callbacks`: functions called with a `TrainState` at every log step, after every evaluation and after the final
    one; one may end the run early (`paperzoo.engine.callbacks`: `EarlyStopping`, `BestCheckpoint`). `writers`:
    where logged metrics go besides the run folder's files (`paperzoo.engine.metrics.MetricWriter`: `write(step,
    split, values)` and `close()` on rank 0, e.g. `WandbWriter(project=...)`). `overwrite=True` lets a new run replace
    the run already in `out_dir` (refused otherwise); `fit(resume=True)` continues it from its last checkpoint.
    `stop_on_signals=True` (`paperzoo train`): the first SIGINT or SIGTERM stops the run after the current step,
    with a checkpoint of that step when there is a run folder, by raising `paperzoo.stopping.Stopped`.
    """

    def __init__(
        self,
        method: Method,
        cfg: TrainConfig,
        out_dir: Path | None = None,
        run_config: dict | None = None,
        callbacks: list[Callable[[TrainState], None]] = (),
        writers: list[MetricWriter] = (),
        ddp_comm_hook: tuple[Any, Callable] | None = None,
        overwrite: bool = False,
        stop_on_signals: bool = False,
    ):
        """`ddp_comm_hook`: (state, hook) registered on the DDP model, e.g. PyTorch's fp16 compression hook.
        `overwrite`: a new run may replace the training run already in `out_dir` (refused otherwise).
        `stop_on_signals`: SIGINT/SIGTERM stop the run after the current step with a checkpoint."""
        self.method, self.cfg, self.callbacks, self.writers = method, cfg, list(callbacks), list(writers)
        self.overwrite = overwrite
        self.stop_on_signals = stop_on_signals
        self._stop = StopRequest(False)
        self.ddp_comm_hook = ddp_comm_hook
        self.env = D.dist_env()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = run_config if run_config is not None else {"train": dataclasses.asdict(cfg)}
        self._validate()

    def _validate(self) -> None:
        cfg = self.cfg
        cfg.check("TrainConfig.")  # the command line checked its train.* keys before
        for writer in self.writers:
            if not (callable(getattr(writer, "write", None)) and callable(getattr(writer, "close", None))):
                raise ConfigError("Trainer(writers=...) takes objects with write(step, split, values) and close() "
                                  f"(paperzoo.engine.metrics.MetricWriter), got {type(writer).__name__}")
        if cfg.amp == "fp16" and not torch.cuda.is_available():
            raise ConfigError("train.amp=fp16 needs a CUDA GPU; use train.amp=bf16 or train.amp=off on the CPU")
        if cfg.parallel == "fsdp" and not self.env.distributed:
            raise ConfigError("train.parallel=fsdp shards the model over torchrun's processes: launch it with "
                              "torchrun --nproc_per_node N (N >= 2), or use train.parallel=auto in one process")
        if cfg.parallel == "fsdp" and cfg.amp == "fp16":
            raise ConfigError("train.amp=fp16 is not supported with train.parallel=fsdp (its grad scaler does not "
                              "handle sharded gradients); use train.amp=bf16")
        if cfg.parallel == "dp" and self.env.distributed:
            raise ConfigError("train.parallel=dp runs in one process; launch it with python, not torchrun")
        gpu = torch.cuda.is_available() and (cfg.device == "auto" or cfg.device.startswith("cuda"))
        if cfg.parallel == "dp" and not gpu:
            raise ConfigError("train.parallel=dp (nn.DataParallel) needs CUDA GPUs; on the CPU use "
                              "train.parallel=none, or DDP with torchrun --nproc_per_node N")
        if cfg.sync_batchnorm and not gpu:
            raise ConfigError("train.sync_batchnorm=true needs CUDA GPUs (SyncBatchNorm has no CPU kernel); "
                              "set train.sync_batchnorm=false on the CPU")

    @property
    def checkpoint_path(self) -> Path | None:
        """`out_dir/checkpoints/last.safetensors`, or None without a run folder."""
        return self.out_dir / "checkpoints" / "last.safetensors" if self.out_dir else None

    def fit(self, resume: bool = False) -> TrainResult:
        """Train; `resume` continues from the run folder's last checkpoint (implied after an elastic restart)."""
        device = D.pick_device(self.cfg.device, self.env)
        locked = contextlib.nullcontext()
        if self.out_dir is not None and self.env.is_main:  # one process writes into a run folder at a time
            locked = run_folders.locked(run_folders.writable_folder(self.out_dir), "train")
        with locked, StopRequest(self.stop_on_signals) as self._stop:
            created = D.init_process_group(self.env, device, self.cfg.dist_timeout_s)
            finished = False
            try:
                result = self._fit(device, resume or self.env.restart_count > 0)
                finished = True
                return result
            finally:
                if created:
                    D.teardown(wait_for_all=finished)

    def _fit(self, device: torch.device, resume: bool) -> TrainResult:
        cfg, env = self.cfg, self.env
        D.seed_everything(cfg.seed, 0)  # same init on every rank; DDP also broadcasts rank 0's weights
        model = self.method.build_model().to(device)
        if cfg.sync_batchnorm and env.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        wrapped = self._wrap(model, device)
        optimizer = self._optimizer(model)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")

        start = 0
        sums: dict[str, torch.Tensor] = {}  # training metrics summed since the last log, and over `count` steps
        count = 0
        if resume and self.checkpoint_path and self.checkpoint_path.exists():
            meta = self._load(model, optimizer, scheduler, scaler)
            start = meta["step"]
            states = meta["extra"].get("rng_per_rank", [])
            if env.rank < len(states):
                D.set_rng_state(states[env.rank])  # this rank's own augmentation stream, not rank 0's
            else:  # a checkpoint from fewer ranks: a fresh stream for this rank at this step
                D.seed_everything(D.derive_seed(cfg.seed, start), env.rank)
            pending = meta["extra"].get("pending_per_rank", [])
            if env.rank < len(pending):  # a run stopped between two logs: its next log averages the same steps
                sums = {k: torch.tensor(v, dtype=torch.float32) for k, v in pending[env.rank]["sums"].items()}
                count = pending[env.rank]["count"]
        else:
            D.seed_everything(cfg.seed, env.rank)  # per-rank streams for augmentation
        starts = D.all_gather_objects(start) if resume else [start]
        if len(set(starts)) > 1:
            raise ConfigError(f"ranks would resume from different steps {starts}: every rank must see the same "
                              "run folder (pass the same --out on a file system all nodes share)")
        if start > cfg.steps:
            raise ConfigError(f"{self.out_dir} already trained {start} steps, more than train.steps={cfg.steps}; "
                              f"resume with train.steps >= {start}")
        if not resume and self.out_dir is not None:
            self._claim_folder()
        writes = env.is_main and self.out_dir is not None
        if writes:  # the manifest first: a kill at any point leaves the run's files listed for --overwrite
            run_folders.record(self.out_dir, "train", *(n for n in run_folders.WRITES["train"] if "*" not in n),
                               *run_folders.held_output(self.out_dir)[1] if resume else ())
            atomic_write(self.out_dir / "config.json", (json.dumps(self.run_config, indent=2) + "\n").encode())
        logger = MetricsLogger(self.out_dir if writes else None, resume_step=start,
                               writers=self.writers if env.is_main else ())
        if writes:
            run_folders.record(self.out_dir, "train", *(self.out_dir / "tensorboard").glob("events.out.tfevents.*"))
        batches = self._batches(start * cfg.accumulation, device)
        autocast = self._autocast(device)
        bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not (cfg.progress and env.is_main),
                   dynamic_ncols=True, leave=False)
        check_unused = isinstance(wrapped, nn.parallel.DistributedDataParallel) and not cfg.find_unused_parameters
        before_step = getattr(self.method, "before_optimizer_step", None)
        end, stop, reused = cfg.steps, False, None  # a callback may end the run at an earlier step
        evaluated_at = list(range(cfg.eval_every, cfg.steps, cfg.eval_every)) if cfg.eval_every else []
        try:
            for step in range(start + 1, end + 1):
                logged = step % cfg.log_every == 0 or step == end
                # a dry run trains the first steps after each evaluation, and each logged step: the history that a
                # plateau trend reads (evaluations, or training logs) keeps the real run's length
                if logged or not dry_run_skips(step, evaluated_at):
                    for micro in range(cfg.accumulation):
                        batch = next(batches)
                        last = micro == cfg.accumulation - 1
                        sync = (contextlib.nullcontext() if last or not hasattr(wrapped, "no_sync")
                                else wrapped.no_sync())
                        with sync:
                            with autocast:
                                out = self._training_step(wrapped, batch, step)
                            loss_value = out.loss.detach().float()
                            if not torch.isfinite(loss_value):
                                raise NonFiniteLossError(
                                    f"loss became {loss_value.item()} at step {step}: lower train.lr, set "
                                    f"train.grad_clip, or check the data; the last good checkpoint is kept")
                            scaler.scale(out.loss / cfg.accumulation).backward()
                        for name, value in {"loss": loss_value, **out.metrics}.items():
                            value = torch.as_tensor(value, dtype=torch.float32).detach()
                            sums[name] = sums.get(name, 0) + value / cfg.accumulation
                    count += 1
                    if check_unused and step == start + 1:  # later misses surface as DDP's error, translated above
                        unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
                        if unused:
                            raise UnusedParametersError(_unused_message(unused, step))
                    if before_step is not None:
                        for name, value in before_step(model).items():
                            sums[name] = sums.get(name, 0) + torch.as_tensor(value, dtype=torch.float32)
                    if cfg.grad_clip > 0:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                bar.update(1)

                if logged and count:
                    values = {k: (v / count).item() for k, v in sums.items()}
                    values["lr"] = scheduler.get_last_lr()[0]
                    values = D.all_reduce_mean(values, device)
                    logger.log(step, "train", values)
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
                    sums, count = {}, 0
                    stop = self._callbacks(TrainState(step, values, "train", model, self.out_dir)) or stop
                if cfg.eval_every and step % cfg.eval_every == 0 and step != end:
                    evaluation = self._evaluate(model, device)
                    logger.log(step, "eval", evaluation)
                    stop = self._callbacks(TrainState(step, evaluation, "eval", model, self.out_dir)) or stop
                    reused = evaluation if stop else None  # the final evaluation of a run stopped here
                if stop:
                    end = step
                    break
                kept = cfg.keep_checkpoint_every and step % cfg.keep_checkpoint_every == 0
                if self.out_dir is not None and (kept or cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    self._save(model, optimizer, scheduler, scaler, step, (sums, count), keep=bool(kept))
                if step < end and self._stop_requested(device):
                    if self.out_dir is not None:
                        self._save(model, optimizer, scheduler, scaler, step, (sums, count))
                    raise self._stopped(f"after step {step} of {cfg.steps}")
            if self.out_dir is not None and start < end:  # first: a mistake caught only in evaluation
                self._save(model, optimizer, scheduler, scaler, end)  # loses no training
            if self._stop_requested(device):
                raise self._stopped(f"after its last step ({end}), before the final evaluation")
            final = reused if reused is not None else self._evaluate(model, device)
            if not logger.has_row(end, "eval"):  # a resumed finished run logs its evaluation once
                logger.log(end, "eval", final)
            self._callbacks(TrainState(end, final, "final", model, self.out_dir))
        finally:
            bar.close()
            logger.close()
        return TrainResult(model=model, steps=end, final=final, history=logger, out_dir=self.out_dir)

    def _claim_folder(self) -> None:
        """A new run refuses a folder that holds another run (of any command), unless `overwrite`: every rank looks
        before any rank writes (the gather is the barrier), then rank 0 removes the old run's own files (those its
        manifest lists; never a folder that holds anything else)."""
        command, held = run_folders.held_output(self.out_dir)
        if any(D.all_gather_objects(bool(held))):
            if not self.overwrite:
                shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
                if command in (None, "train"):
                    raise ConfigError(f"{self.out_dir} already holds a training run ({shown or 'seen by another rank'})"
                                      ": pass --resume to continue it, --overwrite to replace it, or choose another "
                                      "--out (in Python: Trainer(...).fit(resume=True), Trainer(..., overwrite=True) "
                                      "or another out_dir)")
                raise ConfigError(f"{self.out_dir} already holds {run_folders.HOLDS.get(command, 'another run')} "
                                  f"({shown}, written by `paperzoo {command}`): pass --overwrite to replace it, or "
                                  "choose another --out (in Python: Trainer(..., overwrite=True) or another out_dir)")
            if self.env.is_main:
                run_folders.remove_output(self.out_dir)
        D.all_gather_objects(None)  # no rank writes before rank 0 has removed the old files

    def _load(self, model, optimizer, scheduler, scaler) -> dict:
        """The run's last checkpoint into the model and optimizer; one that does not fit this run (another model,
        damaged metadata) is a `UserError` naming what does not fit."""
        path = self.checkpoint_path
        try:
            meta = load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                   restore_rng=False)
        except UserError:
            raise
        except RuntimeError as e:
            from paperzoo.engine.checkpoint import read_checkpoint, state_dict_mismatches

            state = {k[len("model."):]: v for k, v in read_checkpoint(path)[0].items() if k.startswith("model.")}
            found = "; ".join(line.strip() for line in state_dict_mismatches(model, state)) or str(e).split("\n")[0]
            raise UserError(f"--resume: {path} holds another model's weights ({found[:300]}); resume with the "
                            "run's own settings, or start a new run with another --out") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise UserError(f"--resume: {path} has damaged or foreign metadata ({type(e).__name__}: {e}); delete it "
                            "to train the run again from its config.json, or start a new run") from None
        step, extra = meta.get("step"), meta.get("extra")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(extra, dict):
            raise UserError(f"--resume: {path} has damaged metadata (step {step!r}); delete it to train the run "
                            "again from its config.json, or start a new run")
        return meta

    def _stop_requested(self, device: torch.device) -> bool:
        """Whether a SIGINT/SIGTERM asked the run to stop; under DDP, whether any rank was asked (so that all stop
        after the same step)."""
        if not self._stop.enabled:
            return False
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self._stop.requested
        flag = torch.tensor([float(self._stop.requested)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and not self._stop.requested:
            self._stop.signum = 15  # another rank's signal; SIGTERM is what torchrun forwards
        return bool(flag.item())

    def _stopped(self, when: str) -> Stopped:
        name = signal_name(self._stop.signum)
        if self.out_dir is None:
            return Stopped(f"stopped by {name} {when} (no run folder, nothing saved)", self._stop.signum)
        return Stopped(f"stopped by {name} {when}; checkpoint saved in {self.checkpoint_path}: continue the run with "
                       f"--resume --out {self.out_dir}", self._stop.signum)

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The method's `configure_optimizer(model, cfg)`, else TrainConfig's optimizer over the method's
        `parameter_groups(model)` or over every trainable parameter."""
        configure = getattr(self.method, "configure_optimizer", None)
        if configure is not None:
            optimizer = configure(model, self.cfg)
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise UserError(f"{type(self.method).__name__}.configure_optimizer must return a torch.optim "
                                f"Optimizer, got {type(optimizer).__name__}")
            return optimizer
        groups = getattr(self.method, "parameter_groups", None)
        if groups is None:
            return build_optimizer(self.cfg, [p for p in model.parameters() if p.requires_grad])
        groups = [{**g, "params": list(g["params"])} if isinstance(g, dict) else {"params": [g]}
                  for g in groups(model)]  # generators listed once; bare parameters: one group each
        grouped = {id(p) for group in groups for p in group["params"]}
        left = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in grouped]
        if left:
            raise UserError(f"{type(self.method).__name__}.parameter_groups leaves out trainable parameters: "
                            f"{', '.join(left[:6])}{' and more' if len(left) > 6 else ''}; put them in a group "
                            "(lr 0 keeps them fixed), or freeze them (requires_grad=False)")
        return build_optimizer(self.cfg, groups)

    def _callbacks(self, state: TrainState) -> bool:
        """Call every callback with `state`; whether one asked to stop (on any rank: a collective under DDP, only
        when there are callbacks)."""
        if not self.callbacks:
            return False
        for callback in self.callbacks:
            callback(state)
        return any(D.all_gather_objects(bool(state.stop))) if self.env.distributed else bool(state.stop)

    def _training_step(self, wrapped: nn.Module, batch: Any, step: int) -> StepOutput:
        try:
            return self.method.training_step(wrapped, batch)
        except RuntimeError as e:  # DDP's own message when a parameter went unused after the first step
            if "Expected to have finished reduction" not in str(e):
                raise
            raise UnusedParametersError(_unused_message([], step - 1)) from e

    def _wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        cfg, env = self.cfg, self.env
        if cfg.parallel == "fsdp":
            return fsdp.shard(model, device)  # in place: `model` is the sharded model
        if env.distributed and cfg.parallel in ("auto", "ddp"):
            ids = [device.index] if device.type == "cuda" else None
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                      find_unused_parameters=cfg.find_unused_parameters)
            if self.ddp_comm_hook is not None:
                ddp.register_comm_hook(*self.ddp_comm_hook)
            return ddp
        if cfg.parallel == "dp" and device.type == "cuda" and torch.cuda.device_count() > 1:
            return nn.DataParallel(model)
        return model

    def _autocast(self, device: torch.device):
        if self.cfg.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.amp == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)

    def _batches(self, start_micro: int, device: torch.device):
        """Endless batches in a deterministic order that a resumed run re-enters at micro-step `start_micro`."""
        cfg, env = self.cfg, self.env
        dataset = self.method.train_dataset()
        sampler = ShardedEpochSampler(len(dataset), rank=env.rank, world_size=env.world_size, seed=cfg.seed)
        per_epoch = len(epoch_batches(sampler, cfg.batch_size, cfg.drop_last))
        if per_epoch == 0:
            raise ConfigError(f"train.batch_size={cfg.batch_size} is larger than this rank's share of the data "
                              f"({len(sampler)} examples); lower train.batch_size or set train.drop_last=false")
        epoch, offset = divmod(start_micro, per_epoch)
        while True:
            sampler.set_epoch(epoch)
            # a private generator per (seed, rank, epoch): creating the loader must not draw from the global RNG
            # (exact resume), and worker seeds differ between ranks (per-rank augmentation)
            loader = DataLoader(dataset, batch_sampler=epoch_batches(sampler, cfg.batch_size, cfg.drop_last)[offset:],
                                num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                generator=torch.Generator().manual_seed(D.derive_seed(cfg.seed, env.rank, epoch)))
            for batch in loader:
                yield move_to(batch, device)
            epoch, offset = epoch + 1, 0

    def _evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            values = self.method.evaluate(model, device)
        model.train(was_training)
        return {k: float(v) for k, v in values.items()}

    def _save(self, model, optimizer, scheduler, scaler, step: int, pending: tuple[dict, int] = ({}, 0),
              keep: bool = False) -> None:
        """Every rank calls this (a collective gathers each rank's RNG state and `pending`, its training metrics
        summed since the last log and their step count); rank 0 writes `last.safetensors`, and with `keep` the same
        checkpoint as `step-<step>.safetensors` beside it (in the run's manifest, so --overwrite removes it).
        Non-finite weights or optimizer state are never saved: the last finite checkpoint stays (DDP keeps the
        replicas equal, so every rank stops here together)."""
        tensors = [*model.parameters(), *(v for s in optimizer.state.values() for v in s.values()
                                          if torch.is_tensor(v) and v.is_floating_point())]
        finite = all(torch.isfinite(fsdp.local(t)).all() for t in tensors)
        sharded = fsdp.is_sharded(model)
        if not (all(D.all_gather_objects(finite)) if sharded else finite):  # each rank sees its shard only
            raise NonFiniteLossError(f"the weights or optimizer state became non-finite by step {step} while the "
                                     "loss was finite: lower train.lr or set train.grad_clip; the last finite "
                                     "checkpoint is kept")
        sums, count = pending
        gathered = D.all_gather_objects((D.rng_state(), {"sums": {k: float(v) for k, v in sums.items()},
                                                          "count": count}))
        states = [state for state, _ in gathered]
        extra = {"rng_per_rank": states}
        if count:
            extra["pending_per_rank"] = [p for _, p in gathered]
        part = getattr(self.method, "checkpoint_state", None)
        kept = part(model) if part else None  # None: the whole state dict
        model_state, optimizer_state = kept, None
        if sharded:  # every rank sends its shards; rank 0 gets whole tensors
            model_state, optimizer_state = fsdp.gather_state(model, optimizer)
            if kept is not None and self.env.is_main:
                model_state = {name: model_state[name] for name in kept}
        if not self.env.is_main:
            return
        paths = [self.checkpoint_path]
        if keep:
            paths.append(self.checkpoint_path.with_name(f"step-{step}.safetensors"))
            run_folders.record(self.out_dir, "train", paths[-1])
        for path in paths:
            save_checkpoint(path, model=model, step=step, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler if scaler.is_enabled() else None, config=self.run_config,
                            extra=extra, model_state=model_state, partial=kept is not None,
                            optimizer_state=optimizer_state)
