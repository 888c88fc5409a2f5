"""Helpers shared by the lessons of module 2 (fine-tuning pretrained models).

Each function says which lesson introduces it; the lessons explain the ideas, this module only
keeps the code in one place so later lessons (and the tests in ``tests/notebooks/test_finetune_utils.py``)
use exactly what an earlier lesson built.
"""

from __future__ import annotations

import contextlib
import csv
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # text bars: a saved widget bar shows "model not found" after a kernel restart

DATA_DIR = Path(__file__).resolve().parent / "data" / "support_intents"


# --------------------------------------------------------------------------------------------
# Lesson 1: devices, seeds, counting parameters
# --------------------------------------------------------------------------------------------

def pick_device(preference: str = "auto") -> torch.device:
    """Lesson 1. ``cuda`` when asked for or available (``"auto"``), else the CPU."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device_preference={preference!r} but no CUDA device is visible")
    return torch.device("cuda")


def set_seed(seed: int) -> None:
    """Lesson 1. Seed Python, NumPy and PyTorch so a run is repeatable on one machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def exact_float32_matmuls() -> None:
    """Lesson 1 (and lesson 1.4). Switch TF32 off for float32 matrix products in PyTorch *and* TensorFlow.

    On Ampere and Hopper GPUs TensorFlow runs float32 matmuls and convolutions in TF32 (a 10-bit
    mantissa, relative error about 1e-3) by default, and PyTorch does when allowed; a comparison of
    the two frameworks to 1e-5 then fails on a GPU although it passes on a CPU. No effect on a CPU.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        import tensorflow as tf
    except ImportError:  # a PyTorch-only environment has nothing more to switch off
        return
    tf.config.experimental.enable_tensor_float_32_execution(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Lesson 1. ``(trainable, total)`` numbers of scalar parameters of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# --------------------------------------------------------------------------------------------
# Lesson 2: the support-intents data and a sentence classifier on top of MiniLM
# --------------------------------------------------------------------------------------------

def load_intents(data_dir: Path | str = DATA_DIR) -> tuple[dict[str, tuple[list[str], np.ndarray]], list[str]]:
    """Lesson 2. ``({split: (texts, label ids)}, label names)`` for train, validation and test.

    Label ids follow the sorted intent names, so they are the same in every split and lesson."""
    rows = {}
    for split in ("train", "validation", "test"):
        with open(Path(data_dir) / f"{split}.csv", newline="", encoding="utf-8") as handle:
            rows[split] = [(r["text"], r["intent"]) for r in csv.DictReader(handle)]
    label_names = sorted({intent for _, intent in rows["train"]})
    index = {name: i for i, name in enumerate(label_names)}
    splits = {
        split: ([text for text, _ in pairs], np.array([index[intent] for _, intent in pairs], dtype=np.int64))
        for split, pairs in rows.items()
    }
    return splits, label_names


def stratified_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Lesson 2. Sorted indices of ``per_class`` examples of every class (fewer if a class is smaller)."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Lesson 2. Average of the token vectors, ignoring padding (how all-MiniLM-L6-v2 embeds a sentence)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class SentenceClassifier(nn.Module):
    """Lesson 2. A pretrained encoder, mean pooling, and a linear head over the classes."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def batches(tokenizer, texts, labels=None, *, batch_size: int, max_length: int, shuffle: bool = False, seed: int = 0):
    """Lesson 2. Tokenised mini-batches ``(input_ids, attention_mask, labels or None)``, padded per batch."""
    order = np.random.default_rng(seed).permutation(len(texts)) if shuffle else np.arange(len(texts))
    for start in range(0, len(texts), batch_size):
        picked = order[start:start + batch_size]
        encoded = tokenizer([texts[i] for i in picked], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
        y = None if labels is None else torch.as_tensor(np.asarray(labels)[picked], dtype=torch.long)
        yield encoded["input_ids"], encoded["attention_mask"], y


def autocast_for(device: torch.device):
    """Lesson 2. Mixed precision on a GPU (bfloat16 where supported, else float16); nothing on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.inference_mode()   # like no_grad, and also skips autograd's version counters: a little faster
def embed_texts(model: SentenceClassifier, tokenizer, texts, *, device: torch.device, max_length: int,
                batch_size: int = 64) -> np.ndarray:
    """Lesson 2. Frozen sentence embeddings (float32 NumPy) of ``texts``, for a linear probe."""
    model.eval()
    out = []
    for input_ids, attention_mask, _ in batches(tokenizer, texts, batch_size=batch_size, max_length=max_length):
        with autocast_for(device):
            out.append(model.embed(input_ids.to(device), attention_mask.to(device)).float().cpu())
    return torch.cat(out).numpy()


@torch.inference_mode()
def predict_logits(model: nn.Module, tokenizer, texts, *, device: torch.device, max_length: int,
                   batch_size: int = 64) -> torch.Tensor:
    """Lesson 2. Class scores (float32, on the CPU) of ``texts``, one row per text."""
    model.eval()
    out = []
    for input_ids, attention_mask, _ in batches(tokenizer, texts, batch_size=batch_size, max_length=max_length):
        with autocast_for(device):
            out.append(model(input_ids.to(device), attention_mask.to(device)).float().cpu())
    return torch.cat(out)


def predict(model: nn.Module, tokenizer, texts, *, device: torch.device, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Lesson 2. Predicted class ids of ``texts``."""
    return predict_logits(model, tokenizer, texts, device=device, max_length=max_length,
                          batch_size=batch_size).argmax(dim=-1).numpy()


def evaluate(model: nn.Module, tokenizer, texts, labels, *, device: torch.device, max_length: int,
             batch_size: int = 64) -> tuple[float, float]:
    """Lesson 2. ``(mean cross-entropy, accuracy)`` of ``model`` on labelled ``texts``.

    The loss is what model selection compares: on a split that every candidate gets (nearly) all
    right, accuracies tie while the loss still says which model is more sure of the right answers."""
    logits = predict_logits(model, tokenizer, texts, device=device, max_length=max_length, batch_size=batch_size)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(dim=-1) == y).float().mean())


def head_from_probe(head: nn.Linear, probe) -> None:
    """Lesson 2. Copy a fitted scikit-learn ``LogisticRegression`` into ``head`` (linear probe first,
    then fine-tune: the encoder never sees gradients from a random head)."""
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(probe.coef_, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(probe.intercept_, dtype=head.bias.dtype))


def linear_warmup_schedule(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Lesson 2. Learning-rate factor at optimiser step ``step`` (0-based): a linear warm-up from 0 to 1
    over ``warmup_steps``, then a linear decay to 0 at ``total_steps`` (the schedule of BERT and of
    ``transformers.get_linear_schedule_with_warmup``). Warm-up keeps the first, large and noisy updates
    of a fresh head from wrecking the pretrained weights."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def train_classifier(model: nn.Module, tokenizer, texts, labels, *, device: torch.device, num_epochs: int,
                     batch_size: int, lr: float, head_lr: float | None = None, max_length: int,
                     seed: int = 0, desc: str = "fine-tune", warmup_fraction: float | None = None,
                     epoch_end=None) -> list[float]:
    """Lesson 2. AdamW on every parameter that requires a gradient; returns the loss of each step.

    ``head_lr`` (default ``lr``) applies to parameters whose name starts with ``head.``. On a GPU the
    forward pass runs in mixed precision (float16 also gets a gradient scaler). With
    ``warmup_fraction`` the rates follow :func:`linear_warmup_schedule` with that share of the steps
    as warm-up; without it they stay constant. ``epoch_end(epoch)``, if given, is called after each
    epoch (1, 2, ...) with the model in eval mode: the place to score it on the validation split and
    keep the best epoch's weights (lesson 2's model selection).

    AdamW is the fused implementation (one pass over each tensor per step instead of about ten
    small operations): on a CPU that is what makes the optimiser step cheap next to the
    forward and backward passes."""
    head_lr = lr if head_lr is None else head_lr
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not n.startswith("head.")], "lr": lr},
        {"params": [p for n, p in named if n.startswith("head.")], "lr": head_lr},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01,
                                  fused=device.type in ("cpu", "cuda"))
    fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    steps = num_epochs * math.ceil(len(texts) / batch_size)
    scheduler = None
    if warmup_fraction is not None:
        warmup_steps = round(warmup_fraction * steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: linear_warmup_schedule(step, warmup_steps=warmup_steps, total_steps=steps))
    with tqdm(total=steps, desc=desc) as bar:
        for epoch in range(num_epochs):
            model.train()
            for input_ids, attention_mask, y in batches(tokenizer, texts, labels, batch_size=batch_size,
                                                        max_length=max_length, shuffle=True, seed=seed + epoch):
                with autocast_for(device):
                    y_hat = model(input_ids.to(device), attention_mask.to(device))
                loss = loss_fn(y_hat.float(), y.to(device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if epoch_end is not None:
                model.eval()
                epoch_end(epoch + 1)
    model.eval()
    return losses


# --------------------------------------------------------------------------------------------
# Lesson 3: LoRA from scratch
# --------------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """Lesson 3. ``y = base(x) + (alpha / r) * x A^T B^T`` with ``base`` frozen.

    ``A`` (r x in) starts random, ``B`` (out x r) starts at zero, so at step 0 the wrapped layer
    computes exactly what ``base`` computes; only ``A`` and ``B`` are trained."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"rank r must be at least 1, got {r}")
        self.base = base
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=device, dtype=dtype))
        # The same start as nn.Linear's own weights (and as peft's default).
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta_weight(self) -> torch.Tensor:
        """The low-rank update ``(alpha / r) B A``, shaped like ``base.weight``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + (alpha / r) B A``: the same outputs, no extra work per call."""
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def add_lora(model: nn.Module, target_modules=("query", "value"), *, r: int = 8, alpha: float = 16.0) -> list[str]:
    """Lesson 3. Freeze every parameter of ``model``, then wrap each ``nn.Linear`` whose name ends
    with one of ``target_modules`` in a :class:`LoRALinear`; return the wrapped names."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[-1] in target_modules
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha))
    return targets


def merge_lora(model: nn.Module) -> nn.Module:
    """Lesson 3. Replace every :class:`LoRALinear` in ``model`` by its merged ``nn.Linear`` (in place)."""
    wrapped = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).merged())
    return model


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Lesson 3. Bytes held in the optimiser's state tensors (Adam: two per trained parameter)."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value) and value.dim() > 0
    )
