"""Pictures for people, drawn with matplotlib (its Agg backend: files only, no display needed):
a run's `curves.png` (losses per epoch, scores per scored epoch, from metrics.csv) and the grid
`evaluate --grid` writes (paintings beside the training paintings nearest to them)."""

import csv
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no window, on any machine
import matplotlib.pyplot as plt  # noqa: E402

from monet_gan.files import write_atomically  # noqa: E402

SCORES = ("fid", "kid")  # drawn in a panel of their own, at the epochs they were scored
NOT_DRAWN = ("mifid", "memorization_distance")  # MiFID is FID unless a run memorizes


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {column: [(epoch, value), ...]} for every column but epoch and seconds;
    empty cells (a score not computed that epoch) are left out."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0].keys() if rows else []) if c not in ("epoch", "seconds")]
    values = {column: [(int(row["epoch"]), float(row[column])) for row in rows if row.get(column)]
              for column in columns}
    return {column: [(epoch, v) for epoch, v in points if math.isfinite(v)] for column, points in values.items()}


def curves_png(metrics: dict[str, list[tuple[int, float]]]) -> bytes:
    """PNG bytes: the losses in one panel and, when any epoch was scored, FID and KID below."""
    losses = {k: v for k, v in metrics.items() if k not in SCORES + NOT_DRAWN}
    scores = {k: v for k, v in metrics.items() if k in SCORES and v}
    figure, axes = plt.subplots(2 if scores else 1, 1, figsize=(8, 7 if scores else 4), squeeze=False)
    loss_axes = axes[0][0]
    for name, points in losses.items():
        if points:
            loss_axes.plot(*zip(*points), marker="." if len(points) < 30 else None, label=name.replace("_", " "))
    loss_axes.set(title="mean losses per epoch", xlabel="epoch", ylabel="loss")
    loss_axes.legend(fontsize="small", ncols=2)
    loss_axes.grid(alpha=0.3)
    if scores:
        score_axes = axes[1][0]
        fid_epochs, fids = zip(*scores["fid"]) if "fid" in scores else ((), ())
        if fids:
            score_axes.plot(fid_epochs, fids, marker="o", color="tab:blue", label="FID")
        score_axes.set(title="scores of the translated photos (lower is better)", xlabel="epoch", ylabel="FID")
        handles = score_axes.get_legend_handles_labels()[0]
        if "kid" in scores:  # on an axis of its own: KID is about a thousandth of FID
            kid_axes = score_axes.twinx()
            handles += kid_axes.plot(*zip(*scores["kid"]), marker="s", color="tab:orange", label="KID")
            kid_axes.set_ylabel("KID")
        score_axes.legend(handles=handles, fontsize="small")
        score_axes.grid(alpha=0.3)
    figure.tight_layout()
    encoded = io.BytesIO()
    figure.savefig(encoded, format="png", dpi=100)
    plt.close(figure)
    return encoded.getvalue()


def write_curves(metrics_file: Path, out: Path) -> None:
    """Redraws `out` (curves.png) from `metrics_file`, written whole and renamed into place."""
    write_atomically(out, curves_png(read_metrics(metrics_file)))


def nearest_grid_png(closest: list[tuple], farthest: list[tuple]) -> bytes:
    """PNG bytes: two blocks of rows, each row a generated image beside the real painting
    nearest to it and their distance (the memorization distance's term: 1 - |cos| of their
    Inception features). `closest` and `farthest` are lists of (generated uint8 [H, W, 3], its
    name, nearest uint8 [H, W, 3], its name, distance), the most copy-like first."""
    rows = max(len(closest), len(farthest))
    figure, axes = plt.subplots(rows, 4, figsize=(10, 2.6 * rows), squeeze=False)
    for column, (title, pairs) in enumerate((("nearest to a training painting", closest),
                                            ("farthest from every training painting", farthest))):
        for row in range(rows):
            left, right = axes[row][2 * column], axes[row][2 * column + 1]
            for ax in (left, right):
                ax.axis("off")
            if row >= len(pairs):
                continue
            generated, name, nearest, nearest_name, distance = pairs[row]
            left.imshow(generated)
            left.set_title(f"{name}\ndistance {distance:.3f}", fontsize="small")
            right.imshow(nearest)
            right.set_title(f"nearest: {nearest_name}", fontsize="small")
        axes[0][2 * column].annotate(title, (1.0, 1.35), xycoords="axes fraction", ha="center",
                                     fontsize="medium", fontweight="bold")
    figure.tight_layout()
    encoded = io.BytesIO()
    figure.savefig(encoded, format="png", dpi=80)
    plt.close(figure)
    return encoded.getvalue()
