"""GPU-only checks: the lessons whose float32 framework comparisons depend on TF32 being off, and the
fine-tuning lessons' mixed-precision path.

On Ampere and Hopper GPUs TensorFlow runs float32 matrix products in TF32 by default (PyTorch when
allowed); lessons 1.4 and 2.1 switch it off in both frameworks, and these runs on a CUDA device show
their PyTorch/TensorFlow comparisons still hold there. Skipped without a GPU.
"""

from __future__ import annotations

import pytest

from grader.resources import COURSES_DIR
from tests.support.notebooks import notebook_smoke_parameters, run_notebook

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

LESSONS = ["01_backprop/04_pytorch_and_tensorflow.ipynb", "02_finetuning/01_transfer_learning_digits.ipynb"]


@pytest.mark.parametrize("lesson", LESSONS)
def test_framework_comparisons_hold_on_the_gpu(lesson, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    path = COURSES_DIR / lesson
    parameters = {**notebook_smoke_parameters(path), "device_preference": "cuda"}
    run_notebook(path, tmp_path / path.name, parameters=parameters)
    assert (tmp_path / path.name).exists()



# The fine-tuning lessons' GPU path (autocast in bfloat16, or float16 with a gradient scaler, and the
# fused AdamW step) is not exercised by the CPU runs in CI.
FINE_TUNING_LESSONS = ["02_finetuning/02_finetune_minilm_intents.ipynb", "02_finetuning/03_lora_from_scratch.ipynb"]


@pytest.mark.parametrize("lesson", FINE_TUNING_LESSONS)
def test_mixed_precision_fine_tuning_runs_on_the_gpu(lesson, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    path = COURSES_DIR / lesson
    parameters = {**notebook_smoke_parameters(path), "device_preference": "cuda"}
    run_notebook(path, tmp_path / path.name, parameters=parameters)
    assert (tmp_path / path.name).exists()
