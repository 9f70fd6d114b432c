"""Where the numbers are computed: the device, the arithmetic precision and the machine.

bf16 autocast runs the convolutions in bfloat16 (8 bits of mantissa, fp32's range) on devices
that compute it natively: GPUs with bf16, CPUs with AMX or AVX512-BF16. The weights, the
optimizer and the loss stay in fp32 (train.py casts the logits up before pCE), so only the
forward and backward arithmetic is rounded. Model and batches use the channels_last memory
layout, which the fast CPU (oneDNN) and GPU (cuDNN) convolutions prefer. Same seed -> same
numbers holds on one machine and torch version; a different CPU model gives different last
digits, so every result records `machine` and `torch`.
"""

import platform

import torch


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} asked for, but CUDA is not available here: use --device cpu or auto"
        )
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def pick_precision(asked, device):
    """('bf16' | 'fp32', why). auto takes bf16 where the device computes it natively (a GPU with
    bf16, a CPU with AMX or AVX512-BF16), fp32 elsewhere; the weights and the loss stay fp32."""
    if asked not in PRECISIONS:
        raise ValueError(f"unknown precision {asked!r}: use {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        why = f"{torch.cuda.get_device_name(device)} {'computes' if native else 'has no'} bf16"
        if asked == "bf16" and not native:
            raise ValueError(f"--precision bf16: {why}; use fp32 or auto")
    else:
        flags = set(cpu_info("flags").split())
        native = device.type == "cpu" and bool(flags & {"amx_bf16", "avx512_bf16"})
        why = (
            "CPU has AMX"
            if "amx_bf16" in flags
            else "CPU has AVX512-BF16"
            if native
            else "CPU has neither AMX nor AVX512-BF16"
            if flags
            else "no bf16 support known for this device"
        )
    if asked == "fp32":
        return "fp32", f"asked for; {why}"
    if asked == "bf16":
        return "bf16", f"asked for; {why}" + (
            "" if native else ": bf16 is emulated, slower than fp32"
        )
    return ("bf16", why) if native else ("fp32", f"{why}, so bf16 would be slower")


def autocast(device, precision):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(model):
    """The memory layout of the model's convolution weights: its input batches follow it."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)  # None: an ONNX model
    return (
        torch.channels_last
        if weight is not None and weight.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


def cpu_info(field):
    """A field of /proc/cpuinfo ('' where there is none, e.g. off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                (
                    line.split(":", 1)[1].strip()
                    for line in f
                    if line.split(":")[0].strip() == field
                ),
                "",
            )
    except OSError:
        return ""


def machine(device):
    """What computed the numbers: they are reproducible on the same machine and torch version
    only."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def cpu_name():
    return cpu_info("model name") or platform.processor() or "unknown CPU"
