"""The results page's section on predict.py through onnxruntime (export.py onnx, docs/gis.md):
the classes each path gives against torch fp32's, and farm-bench's medians, read from the log of
scripts/onnx_speed.sh (<folder>/gis/onnx-speed.log)."""

import re


def path_name(command):
    """'python predict.py /x/int8.onnx ...' -> 'onnx int8'; a model.pt -> torch fp32 or auto."""
    if ".onnx" in command:
        return "onnxruntime " + re.search(r"(\w+)\.onnx", command)[1]
    return "torch fp32" if "--precision fp32" in command else "torch, --precision auto"


def onnx_speed(folder):
    log = folder / "gis" / "onnx-speed.log"
    if not log.is_file():
        return []
    text = log.read_text().splitlines()
    when, command = text[0].lstrip("# "), text[1].lstrip("$ ")
    agreement = [line.split() for line in text if re.match(r"(torch|onnx)-\w+ +\d", line)]
    lines = [
        "## Inference through ONNX on a CPU",
        "",
        f"`{command}` ([docs/gis.md](../docs/gis.md#speed-on-a-cpu)) — {when} "
        "([log](gis/onnx-speed.log)): the report's final model on the synthetic scenes, "
        "`predict.py` from `model.pt` (torch) and from its `export.py onnx` files (onnxruntime).",
        "",
        "| path | same classes as torch fp32: 60 test scenes | 4000² tile | test mIoU, 60 scenes |",
        "|---|---|---|---|",
    ]
    names = {"torch-fp32": "torch fp32", "torch-auto": "torch, --precision auto"}
    for name, scenes, tile, miou in agreement:
        label = names.get(name, name.replace("onnx-", "onnxruntime "))
        lines.append(f"| {label} | {scenes.rstrip(';')} | {tile} | {miou} |")
    lines += [
        "",
        "farm-bench, 3 runs of each command in turn (A B A B ...), whole process; medians, and "
        "the median of the pairwise ratios:",
        "",
        "| input | A | B | A wall | B wall | A / B wall | A peak | B peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, line in enumerate(text):
        if not line.startswith("$ farm-bench"):
            continue
        b, a = re.search(r"--vs '(.*)' -- (.*)", line).groups()
        block, figure = text[i + 1 : i + 30], {}
        for row in block:
            if row.startswith("$ "):  # the next command's
                break
            if m := re.match(r"(A|B|A/B) (wall|peak)(?: s| MiB)? +[\d.]+ +([\d.]+)", row):
                figure[m[1], m[2]] = float(m[3])
        if len(figure) < 5:
            continue
        tile = "GeoTIFF scene, 4000² 3-band" if a.endswith(".tif") else "4000² PNG tile"
        lines.append(
            f"| {tile} | {path_name(a)} | {path_name(b)} | {figure['A', 'wall']:.1f} s | "
            f"{figure['B', 'wall']:.1f} s | {figure['A/B', 'wall']:.2f}× | "
            f"{figure['A', 'peak']:.0f} MiB | {figure['B', 'peak']:.0f} MiB |"
        )
    return lines + [""]
