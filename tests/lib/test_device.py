"""device.py: the precision --precision auto picks, and why, on each kind of CPU."""

import pytest
import torch

from lib import device


@pytest.mark.parametrize(
    "flags, asked, expected",
    [
        ("fpu sse avx512_bf16 avx512f", "auto", ("bf16", "CPU has AVX512-BF16")),
        ("fpu amx_bf16 amx_tile", "auto", ("bf16", "CPU has AMX")),
        (
            "fpu sse avx2",
            "auto",
            ("fp32", "CPU has neither AMX nor AVX512-BF16, so bf16 would be slower"),
        ),
        (
            "fpu sse avx2",
            "bf16",
            (
                "bf16",
                "asked for; CPU has neither AMX nor AVX512-BF16: bf16 is emulated, slower than "
                "fp32",
            ),
        ),
        ("fpu avx512_bf16", "fp32", ("fp32", "asked for; CPU has AVX512-BF16")),
    ],
)
def test_auto_precision_follows_the_cpu_and_says_why(monkeypatch, flags, asked, expected):
    monkeypatch.setattr(device, "cpu_info", lambda field: flags if field == "flags" else "")
    assert device.pick_precision(asked, torch.device("cpu")) == expected
