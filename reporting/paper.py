"""The report this project reproduces, as data: the settings its tables compare and the numbers
it printed for them (single runs, ImageNet-pretrained encoder).

experiments.py trains these settings over seeds; page.py and figures.py lay their records out
as the report's tables and figures, beside the report's own numbers.
"""

# the settings each table compares (train.py's defaults fill in the rest)
DENSITY_POINTS = (50, 200, 500, 1000)  # Table 1: random points per image
STRATEGY_POINTS = (5, 10, 20)  # Table 2: points per class, random | stratified
FINAL = dict(points_per_class=10, strategy="random")  # Table 3, the baselines and Table 5
REGULARISED = [
    (f"{k} pts/class", dict(points_per_class=k, strategy="random")) for k in STRATEGY_POINTS
] + [("200 pts/image", dict(points=200))]  # Table 4: pCE vs pCE + CRF
# the report's numbers (1 run each)
REPORT_DENSITY_MIOU = {50: 0.8151, 200: 0.9157, 500: 0.9248, 1000: 0.9417}
REPORT_FINAL = dict(miou=0.9290, pixel_accuracy=0.9716)
