"""courses/02_finetuning/finetune_utils.py: LoRA counts, zero start, merging, data loading."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from grader.resources import COURSES_DIR

sys.path.insert(0, str(COURSES_DIR / "02_finetuning"))
import finetune_utils as fu  # noqa: E402


class Block(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width, bias=False)

    def forward(self, x):
        return torch.tanh(self.query(x)) + torch.sigmoid(self.key(x)) * self.value(x)


class Tiny(nn.Module):
    def __init__(self, width=16, depth=2, num_classes=3):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_lora_linear_counts_and_freezes_the_base():
    layer = fu.LoRALinear(nn.Linear(20, 30), r=4, alpha=8)
    trainable, total = fu.count_parameters(layer)
    assert trainable == 4 * 20 + 30 * 4
    assert total == trainable + 20 * 30 + 30
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad
    assert layer.scaling == 2.0


def test_zero_b_means_the_wrapped_layer_starts_as_the_base():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    x = torch.randn(5, 12)
    layer = fu.LoRALinear(base, r=3, alpha=6)
    assert torch.count_nonzero(layer.lora_B) == 0
    assert torch.count_nonzero(layer.lora_A) > 0
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)


def test_the_update_is_scaled_by_alpha_over_r():
    torch.manual_seed(0)
    layer = fu.LoRALinear(nn.Linear(6, 5), r=2, alpha=10)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6)
    expected = layer.base(x) + 5.0 * x @ (layer.lora_B @ layer.lora_A).T
    torch.testing.assert_close(layer(x), expected)


def test_add_lora_wraps_only_the_targets_and_trains_only_adapters():
    model = Tiny()
    wrapped = fu.add_lora(model, ("query", "value"), r=2, alpha=4)
    assert wrapped == ["blocks.0.query", "blocks.0.value", "blocks.1.query", "blocks.1.value"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.{m}.lora_{ab}" for i in range(2) for m in ("query", "value") for ab in "AB"}
    assert fu.count_parameters(model)[0] == 4 * (2 * 16 + 16 * 2)
    assert isinstance(model.blocks[0].key, nn.Linear) and not isinstance(model.blocks[0].key, fu.LoRALinear)


def test_merging_gives_the_same_outputs_and_the_base_architecture():
    torch.manual_seed(1)
    model = Tiny()
    total_before = fu.count_parameters(model)[1]
    fu.add_lora(model, ("query", "value"), r=4, alpha=16)
    for module in model.modules():
        if isinstance(module, fu.LoRALinear):
            with torch.no_grad():
                module.lora_B.normal_(std=0.5)
    x = torch.randn(8, 16)
    with torch.no_grad():
        before = model(x)
        fu.merge_lora(model)
        after = model(x)
    assert not any(isinstance(m, fu.LoRALinear) for m in model.modules())
    assert fu.count_parameters(model)[1] == total_before
    assert (before - after).abs().max().item() < 1e-5


def test_a_training_step_moves_only_adapters_and_lowers_the_loss():
    torch.manual_seed(2)
    model = Tiny()
    fu.add_lora(model, ("query",), r=2, alpha=2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    x, y = torch.randn(32, 16), torch.randint(0, 3, (32,))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    # Adam keeps two float32 tensors per trained parameter.
    assert fu.optimizer_state_bytes(optimizer) == 2 * 4 * fu.count_parameters(model)[0]


def test_rank_must_be_positive():
    with pytest.raises(ValueError):
        fu.LoRALinear(nn.Linear(3, 3), r=0)


def test_support_intents_split_is_as_documented():
    splits, names = fu.load_intents()
    assert len(names) >= 8
    sizes = {split: len(texts) for split, (texts, _) in splits.items()}
    assert sum(sizes.values()) >= 600
    for split, (texts, labels) in splits.items():
        assert len(texts) == len(labels)
        assert set(np.unique(labels)) == set(range(len(names))), split
    seen = [{t.lower() for t in splits[s][0]} for s in ("train", "validation", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_stratified_subset_takes_the_same_count_of_every_class():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3)
    picked = fu.stratified_subset(labels, per_class=4, seed=0)
    assert np.bincount(labels[picked]).tolist() == [4, 4, 3]
    assert np.array_equal(picked, fu.stratified_subset(labels, per_class=4, seed=0))


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(fu.mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_pick_device_falls_back_to_cpu():
    assert fu.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert fu.pick_device("auto").type == "cpu"
        with pytest.raises(RuntimeError):
            fu.pick_device("cuda")


def test_exact_float32_matmuls_switches_tf32_off_in_both_frameworks():
    """Lessons 1.4 and 2.1 compare PyTorch and TensorFlow in float32; TF32 (TensorFlow's default on
    Ampere/Hopper GPUs) would break that on a GPU. The switch itself is checked here, on any machine."""
    tf = pytest.importorskip("tensorflow")
    fu.exact_float32_matmuls()
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_linear_warmup_schedule_matches_transformers():
    """The hand-written warm-up schedule of lesson 2.2 equals the library's, step by step."""
    transformers = pytest.importorskip("transformers")
    warmup, total = 7, 40
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = transformers.get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)
    for step in range(total + 3):
        assert fu.linear_warmup_schedule(step, warmup_steps=warmup, total_steps=total) == pytest.approx(reference.get_last_lr()[0])
        optimizer.step()
        reference.step()
    assert fu.linear_warmup_schedule(0, warmup_steps=warmup, total_steps=total) == 0.0
    assert fu.linear_warmup_schedule(warmup, warmup_steps=warmup, total_steps=total) == 1.0


class CharTokenizer:
    """A stand-in for a Hugging Face tokenizer: one id per character, padded per batch."""

    pad_token_id = 0

    def __call__(self, texts, *, padding, truncation, max_length, return_tensors):
        ids = [[1 + ord(ch) % 40 for ch in text][:max_length] for text in texts]
        width = max(len(row) for row in ids)
        return {"input_ids": torch.tensor([row + [0] * (width - len(row)) for row in ids]),
                "attention_mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])}


class BagOfCharacters(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.embed = nn.Embedding(41, 8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, input_ids, attention_mask):
        return self.head(fu.mean_pool(self.embed(input_ids), attention_mask))


TEXTS = ["aaaa", "abab", "aab", "bbbb", "bbab", "bba"] * 3
LABELS = np.array([0, 0, 0, 1, 1, 1] * 3)


def test_evaluate_returns_the_mean_cross_entropy_and_the_accuracy():
    torch.manual_seed(0)
    model, tokenizer = BagOfCharacters(), CharTokenizer()
    loss, accuracy = fu.evaluate(model, tokenizer, TEXTS, LABELS, device=torch.device("cpu"), max_length=8, batch_size=4)
    encoded = tokenizer(TEXTS, padding=True, truncation=True, max_length=8, return_tensors="pt")
    with torch.no_grad():
        logits = model(encoded["input_ids"], encoded["attention_mask"])
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, torch.as_tensor(LABELS)).item(), rel=1e-5)
    assert accuracy == pytest.approx((logits.argmax(-1).numpy() == LABELS).mean())
    assert np.array_equal(fu.predict(model, tokenizer, TEXTS, device=torch.device("cpu"), max_length=8),
                          logits.argmax(-1).numpy())


def test_train_classifier_calls_epoch_end_after_each_epoch_in_eval_mode_and_learns():
    torch.manual_seed(0)
    model, tokenizer, cpu = BagOfCharacters(), CharTokenizer(), torch.device("cpu")
    start_loss, _ = fu.evaluate(model, tokenizer, TEXTS, LABELS, device=cpu, max_length=8)
    seen = []

    def epoch_end(epoch):
        seen.append((epoch, model.training, fu.evaluate(model, tokenizer, TEXTS, LABELS, device=cpu, max_length=8)[0]))

    losses = fu.train_classifier(model, tokenizer, TEXTS, LABELS, device=cpu, num_epochs=3, batch_size=4, lr=0.05,
                                 max_length=8, warmup_fraction=0.1, epoch_end=epoch_end)
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3]
    assert not any(training for _, training, _ in seen)
    assert len(losses) == 3 * 5                       # ceil(18 / 4) steps per epoch
    assert seen[-1][2] < 0.5 * start_loss             # it learns the a/b rule
