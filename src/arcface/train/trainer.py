"""The training loop: backbone (DDP) + margin head (Partial FC, model parallel) + SGD/AdamW.

One optimiser step consumes ``grad_accum`` micro-batches of ``optim.batch_size`` images per process.
The loss is the mean margin-softmax cross-entropy over the global batch; gradients are those of that
loss whatever the number of processes (the Partial FC all-gather hands each rank the exact gradient of
its embeddings, and the trainer undoes DDP's averaging of backbone gradients by multiplying by the
world size), so one step with N processes equals one step in a single process on the same global batch.

Exact resume: a checkpoint stores the model, head, optimiser, scheduler, the RNG states (python, numpy,
torch, CUDA, Partial FC's sampling generator) and the sampler position (epoch, micro-batch); the data
stream is a pure function of that position (see :mod:`arcface.train.data`), so the loss trajectory after a
resume is the one the uninterrupted run would have produced.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from arcface.errors import InputError, first_line
from arcface.io_utils import atomic_write_text
from arcface.train import checkpoint as ckpt
from arcface.train.config import TrainConfig, validate
from arcface.train.data import Augment, FaceDataset, ResumableSampler, open_dataset
from arcface.train.distributed import DistContext, barrier, broadcast_object, setup
from arcface.train.logger import ScalarLogger
from arcface.train.models import build_backbone, build_head
from arcface.train.schedule import lr_factor
from arcface.train.verification import VerificationCallback

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code using the global RNG
    torch.manual_seed(seed)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def init_backbone_from(backbone: nn.Module, path: str, arch: str | None = None) -> str:
    """Load backbone weights for fine-tuning from any model string :func:`arcface.models.parse_model` accepts:
    a checkpoint (folder or ``.pt``), an ONNX recognizer, or a pack (its recognizer).

    For ONNX (and packs), ``arch`` is the registered backbone name the graph is converted into (e.g.
    ``mbf_w600k`` for insightface's ``w600k_mbf.onnx``); it must be the trainer's ``model.network``.
    Returns the source kind (``onnx``, ``pack`` or ``ckpt``): ONNX weights come with folded BatchNorms, whose
    statistics the caller must restore before training-mode BatchNorm (:mod:`arcface.nn.batchnorm`).
    """
    from arcface.models import parse_model, resolve_pack

    try:
        ref = parse_model(path)
    except InputError as exc:
        raise InputError(f"run.init_from: {exc}") from None
    if ref.kind in ("onnx", "pack"):
        from arcface.nn.convert import load_onnx_recognizer

        onnx = ref.path if ref.kind == "onnx" else resolve_pack(ref).recognizer
        src = load_onnx_recognizer(onnx, arch=arch)
        state = src.state_dict() if isinstance(src, nn.Module) else src
    else:
        state = ckpt.load_backbone_state(ref.path)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if len(missing) == len(backbone.state_dict()):
        raise InputError(f"run.init_from: {path} has no weights matching the backbone")
    if missing or unexpected:
        log.warning("init_from %s: %d missing, %d unexpected keys", path, len(missing), len(unexpected))
    return ref.kind


#: Samples used to restore the BatchNorm statistics of a model imported from ONNX.
BN_RESTORE_SAMPLES = 512


def resolve_workers_threads(workers: int, threads: int, cpus: int | None = None) -> tuple[int, int]:
    """``data.num_workers`` and ``run.threads`` with their autos resolved for a machine of ``cpus`` cores.

    Auto workers: 0 on up to 2 cores (decoding 112x112 crops is cheap; a worker would steal a core from the
    model), else ``min(4, (cpus - 2) // 2 + 1)``. Auto threads: with workers, the cores they leave (at least
    1); without, torch's current setting (its default is the core count). Returns ``(workers, threads)``.
    """
    cpus = cpus or os.cpu_count() or 1
    if workers < 0:
        workers = 0 if cpus <= 2 else min(4, (cpus - 2) // 2 + 1)
    elif workers >= cpus and workers > 0:
        log.warning(
            "data.num_workers=%d on a %d-core machine: the loader processes and the model fight for the cores "
            "(set data.num_workers=-1 for the automatic choice)",
            workers,
            cpus,
        )
    if threads == 0:
        threads = max(1, cpus - workers) if workers else torch.get_num_threads()
    return workers, threads


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs the loop.

    Args:
        cfg: the configuration.
        dataset: a dataset to use instead of opening ``cfg.data.path`` (tests, synthetic data).
        verification: a callback evaluated every ``cfg.run.val_every`` steps (else built from
            ``cfg.data.val_sets`` when given).
        dist_ctx: an explicit distributed context (default: from torchrun's environment).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        dataset: FaceDataset | None = None,
        verification: VerificationCallback | None = None,
        dist_ctx: DistContext | None = None,
    ) -> None:
        validate(cfg)
        self.cfg = cfg
        self.ctx = dist_ctx or setup(cfg.run.device)
        self.device = self.ctx.device
        self.num_workers, threads = resolve_workers_threads(cfg.data.num_workers, cfg.run.threads)
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        o = cfg.optim
        if o.amp != "none" and self.device.type != "cuda":
            log.warning("optim.amp=%s needs CUDA: this run trains in fp32 on %s", o.amp, self.device)
        d = cfg.data
        augment = Augment(flip=d.flip, color=d.color, blur=d.blur, crop=d.crop, mask=d.mask, lowres=d.lowres)
        if dataset is None:
            if not cfg.data.path:
                raise InputError("data.path is empty: give the dataset (ImageFolder or RecordIO), e.g. data.path=DIR")
            dataset = open_dataset(cfg.data.path, augment, cfg.data.list_file, resize=cfg.data.resize)
        elif dataset.augment is None:
            dataset.augment = augment
        self.holdout: list[tuple[str, int]] = []
        if cfg.data.holdout > 0:
            from arcface.train.holdout import pick_holdout

            held = pick_holdout(dataset.labels, cfg.data.holdout, cfg.run.seed)
            self.holdout = [(dataset.keys[i], int(dataset.labels[i])) for i in held]
            dataset.keep(np.setdiff1d(np.arange(len(dataset)), held))
            log.info("%d images held out for calibration (data.holdout=%g)", len(held), cfg.data.holdout)
        self.dataset = dataset
        self.num_classes = cfg.head.num_classes or dataset.num_classes
        if int(dataset.labels.max()) >= self.num_classes:
            raise InputError(
                f"head.num_classes={self.num_classes} but the data has labels up to {int(dataset.labels.max())}"
            )
        if self.num_classes > 2 * dataset.num_classes:
            gb = self.num_classes * cfg.model.embedding_size * cfg.head.subcenters * 4 * 3 / 1e9
            log.warning(
                "head.num_classes=%d but the data has %d classes: the head holds %d unused class centres "
                "(about %.1f GB with its optimiser state); leave head.num_classes=0 to take the data's count",
                self.num_classes,
                dataset.num_classes,
                self.num_classes - dataset.num_classes,
                gb,
            )
        log.info("%d images of %d classes; head with %d classes", len(dataset), dataset.num_classes, self.num_classes)

        seed_everything(cfg.run.seed)
        self.backbone = build_backbone(
            cfg.model.network, cfg.model.embedding_size, cfg.model.dropout, cfg.model.width, cfg.model.norm
        ).to(self.device)
        self.bn_mode = cfg.model.bn if cfg.model.bn != "auto" else ("frozen" if cfg.run.init_from else "batch")
        if cfg.run.init_from:
            kind = init_backbone_from(self.backbone, cfg.run.init_from, cfg.model.network)
            if kind in ("onnx", "pack"):
                self._restore_bn_statistics()
        # Each rank's head shard gets its own initial values and sampling stream.
        torch.manual_seed(cfg.run.seed + 1000 * self.ctx.rank + 1)
        self.head_generator = torch.Generator(device=self.device)
        self.head_generator.manual_seed(cfg.run.seed + 7919 * (self.ctx.rank + 1))
        head = build_head(
            cfg.model.embedding_size,
            self.num_classes,
            cfg.head.margin_list,
            cfg.head.scale,
            cfg.head.sample_rate,
            cfg.head.subcenters,
            generator=self.head_generator,
        )
        self.head_sharded = True  # Partial FC: each rank holds its shard of the class centres
        self.head = head.to(self.device)
        seed_everything(cfg.run.seed + self.ctx.rank)

        self.model: nn.Module = self.backbone
        if self.ctx.world_size > 1:
            ddp_kw = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.model = nn.parallel.DistributedDataParallel(self.backbone, **ddp_kw)

        params = [
            {"params": list(self.backbone.parameters())},
            {"params": list(_unwrap(self.head).parameters())},
        ]
        if o.optimizer.lower() == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)

        self.sampler = ResumableSampler(len(dataset), cfg.run.seed, self.ctx.rank, self.ctx.world_size)
        self.micro_per_epoch = (self.sampler.num_samples // o.batch_size) // o.grad_accum * o.grad_accum
        self.steps_per_epoch = self.micro_per_epoch // o.grad_accum
        if self.steps_per_epoch < 1:
            raise InputError(
                f"{len(dataset)} samples cannot fill one step of batch {o.batch_size} x "
                f"{self.ctx.world_size} processes x {o.grad_accum} accumulation: lower optim.batch_size"
            )
        self.total_steps = o.max_steps if o.max_steps > 0 else o.epochs * self.steps_per_epoch
        self.warmup_steps = int(round(o.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total_steps, self.warmup_steps, o.lr_power)
        )
        self.amp_dtype = None
        if self.device.type == "cuda" and o.amp != "none":
            self.amp_dtype = torch.bfloat16 if o.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

        self.step = 0
        self.epoch = 0
        self.micro_in_epoch = 0
        self.history: list[tuple[int, float]] = []  # (step, loss) of every optimiser step
        self.output = Path(cfg.run.output)
        self.verification = verification
        if self.verification is None and cfg.data.val_sets and cfg.run.val_every > 0 and self.ctx.is_main:
            try:
                self.verification = VerificationCallback.from_paths(
                    cfg.data.val_sets, cfg.data.val_dir, cfg.run.val_every
                )
            except InputError as exc:
                log.warning("verification disabled: %s", exc)
        # Every rank must agree on when rank 0 evaluates (the others wait at a barrier meanwhile).
        self._val_every = int(
            broadcast_object(self.verification.every if (self.ctx.is_main and self.verification) else 0)
        )
        resumed = self._maybe_resume()
        self.logger: ScalarLogger | None = None
        if self.ctx.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.output / "config.json", cfg.to_json() + "\n")
            if self.holdout and cfg.data.path:
                from arcface.train.holdout import HOLDOUT_FILE, write_holdout

                write_holdout(self.output / HOLDOUT_FILE, str(Path(cfg.data.path).resolve()), self.holdout)
            self.logger = ScalarLogger(self.output, cfg.run.tensorboard, resume_step=self.step if resumed else None)

    def _restore_bn_statistics(self) -> None:
        """Give the folded BatchNorms of an ONNX import the statistics of this run's data (eval-mode output
        unchanged): needed when ``bn_mode`` is ``batch``, harmless when frozen. Deterministic in the seed, so
        every rank computes the same values."""
        from arcface.nn.batchnorm import restore_statistics

        n = len(self.dataset)
        pick = np.random.default_rng(self.cfg.run.seed).permutation(n)[: min(n, BN_RESTORE_SAMPLES)]
        batches = (
            torch.stack([self.dataset[int(i)][0] for i in pick[k : k + 64]]).to(self.device)
            for k in range(0, len(pick), 64)
        )
        seen = restore_statistics(self.backbone, batches)
        log.info("BatchNorm statistics of the imported model restored from %d training images", seen)

    def _train_mode(self) -> None:
        self.model.train()
        self.head.train()
        if self.bn_mode == "frozen":
            from arcface.nn.batchnorm import freeze

            freeze(self.backbone)

    # ------------------------------------------------------------------------------------- checkpoints
    def _generators(self) -> dict[str, torch.Generator]:
        return {"head": self.head_generator}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "head": _unwrap(self.head).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": ckpt.rng_state(self._generators()),
            "step": self.step,
            "epoch": self.epoch,
            "micro_in_epoch": self.micro_in_epoch,
            "world_size": self.ctx.world_size,
            "rank": self.ctx.rank,
            "num_classes": self.num_classes,
            "subcenters": self.cfg.head.subcenters,
            "config": self.cfg.to_dict(),
            "history": self.history,
        }
        if self.ctx.is_main:
            state["backbone"] = self.backbone.state_dict()
        return state

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_XXXXXXXX/rank{r}.pt`` on every rank, atomically."""
        tmp = ckpt.tmp_step_dir(self.output, self.step)
        if self.ctx.is_main:
            tmp.mkdir(parents=True, exist_ok=True)
        barrier()
        ckpt.atomic_save(self.state_dict(), tmp / f"rank{self.ctx.rank}.pt")
        barrier()
        final = ckpt.step_dir(self.output, self.step)
        if self.ctx.is_main:
            ckpt.finalize(self.output, self.step, self.cfg.run.keep_last)
        barrier()
        return final

    def load_state(self, path: str | os.PathLike) -> None:
        state = ckpt.load_rank_file(path, self.ctx.rank)
        ckpt.check_train_state(state, path, self.ctx.rank)
        if int(state.get("world_size", 1)) != self.ctx.world_size:
            raise InputError(
                f"{path}: saved with {state.get('world_size')} processes, resuming with "
                f"{self.ctx.world_size} "
                "(Partial FC shards need the same world size)"
            )
        if self.ctx.is_main or "backbone" not in state:
            backbone_state = state.get("backbone")
        else:
            backbone_state = None
        if backbone_state is None:
            backbone_state = ckpt.load_backbone_state(path)
        try:
            self.backbone.load_state_dict(backbone_state)
            _unwrap(self.head).load_state_dict(state["head"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            msg = f"checkpoint {path}: does not fit this run's model or optimiser ({first_line(exc)})"
            raise InputError(msg) from None
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.micro_in_epoch = state["step"], state["epoch"], state["micro_in_epoch"]
        self.history = list(state.get("history", []))
        ckpt.set_rng_state(state["rng"], self._generators())

    def _maybe_resume(self) -> bool:
        r = self.cfg.run.resume
        if r == "none":
            return False
        path = ckpt.latest_checkpoint(self.output) if r == "auto" else Path(r)
        if path is None:
            return False
        self.load_state(path)
        if self.ctx.is_main:
            log.info("resumed from %s at step %d", path, self.step)
        return True

    # -------------------------------------------------------------------------------------------- steps
    def _forward_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ctx = (
            torch.autocast(device_type="cuda", dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            emb = self.model(images)
        return self.head(emb.float(), labels)

    def micro_step(self, images: torch.Tensor, labels: torch.Tensor, sync: bool = True) -> float:
        """Forward + backward of one micro-batch (loss divided by ``grad_accum``); returns the loss."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        no_sync = (
            self.model.no_sync()
            if (not sync and isinstance(self.model, nn.parallel.DistributedDataParallel))
            else contextlib.nullcontext()
        )
        with no_sync:
            loss = self._forward_loss(images, labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step}: lower optim.lr or use bf16")
            scaled = loss / self.cfg.optim.grad_accum
            if self.scaler is not None:
                self.scaler.scale(scaled).backward()
            else:
                scaled.backward()
        return float(loss.detach())

    def optimizer_step(self) -> None:
        """Apply accumulated gradients: undo DDP averaging, clip, step, schedule, zero."""
        if self.head_sharded and self.ctx.world_size > 1:
            for p in self.backbone.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.ctx.world_size)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), self.cfg.optim.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One full optimiser step on this rank's batch (split into ``grad_accum`` micro-batches)."""
        self._train_mode()
        n = self.cfg.optim.grad_accum
        chunks = list(zip(images.chunk(n), labels.chunk(n), strict=True))
        losses = [self.micro_step(x, y, sync=i == len(chunks) - 1) for i, (x, y) in enumerate(chunks)]
        self.optimizer_step()
        self.step += 1
        return float(np.mean(losses))

    def _loader(self) -> DataLoader:
        o = self.cfg.optim
        self.sampler.set_epoch(self.epoch, start=self.micro_in_epoch * o.batch_size)
        g = torch.Generator()
        g.manual_seed(self.cfg.run.seed + self.epoch)
        return DataLoader(
            self.dataset,
            batch_size=o.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            generator=g,
            persistent_workers=False,
        )

    # --------------------------------------------------------------------------------------------- loop
    def train(self, stop_at_step: int | None = None, on_step: Callable[[Trainer, float], None] | None = None) -> dict:
        """Run until ``total_steps`` (or ``stop_at_step``, to simulate an interruption); returns a summary."""
        o, r = self.cfg.optim, self.cfg.run
        end = self.total_steps if stop_at_step is None else min(stop_at_step, self.total_steps)
        global_batch = o.batch_size * o.grad_accum * self.ctx.world_size
        bar = None
        if self.ctx.is_main and r.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.cfg.name, unit="step", dynamic_ncols=True)
        self._train_mode()
        t_start, steps_done = time.perf_counter(), 0
        t_window, n_window = time.perf_counter(), 0
        micro_losses: list[float] = []
        last_val: dict[str, float] = {}
        try:
            while self.step < end:
                if self.micro_in_epoch >= self.micro_per_epoch:
                    self.epoch += 1
                    self.micro_in_epoch = 0
                for images, labels in self._loader():
                    k = self.micro_in_epoch % o.grad_accum
                    micro_losses.append(self.micro_step(images, labels, sync=k == o.grad_accum - 1))
                    self.micro_in_epoch += 1
                    if k != o.grad_accum - 1:
                        continue
                    lr = self.optimizer.param_groups[0]["lr"]
                    self.optimizer_step()
                    self.step += 1
                    steps_done += 1
                    n_window += 1
                    loss = float(np.mean(micro_losses))
                    micro_losses.clear()
                    self.history.append((self.step, loss))
                    if on_step is not None:
                        on_step(self, loss)
                    if self.ctx.is_main and (self.step % max(1, r.log_every) == 0 or self.step == end):
                        now = time.perf_counter()
                        sps = n_window * global_batch / max(now - t_window, 1e-9)
                        t_window, n_window = now, 0
                        scalars = {"train/loss": loss, "train/lr": lr, "train/samples_per_s": sps}
                        scalars["train/epoch"] = self.epoch + self.micro_in_epoch / self.micro_per_epoch
                        if self.logger is not None:
                            self.logger.log(self.step, scalars)
                        if bar is not None:
                            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.4g}", sps=f"{sps:.0f}")
                    if bar is not None:
                        bar.update(1)
                    if self._val_every > 0 and self.step % self._val_every == 0:
                        if self.ctx.is_main and self.verification is not None:
                            last_val = self.verification.evaluate(self.backbone, self.device)
                            self.verification.history.append((self.step, last_val))
                            if self.logger is not None:
                                self.logger.log(self.step, last_val)
                            log.info("step %d: %s", self.step, last_val)
                            self._train_mode()  # evaluation leaves the backbone in plain train mode
                        barrier()
                    if r.ckpt_every > 0 and (self.step % r.ckpt_every == 0 or self.step == self.total_steps):
                        self.save_checkpoint()
                    if self.step >= end or self.micro_in_epoch >= self.micro_per_epoch:
                        break
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - t_start
        if self.ctx.is_main and self.step >= self.total_steps:
            ckpt.atomic_save(self.backbone.state_dict(), self.output / "backbone.pt")
        return {
            "steps": self.step,
            "epoch": self.epoch,
            "loss": self.history[-1][1] if self.history else math.nan,
            "samples_per_s": steps_done * global_batch / max(elapsed, 1e-9),
            "val": last_val,
        }

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
