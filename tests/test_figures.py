"""Pictures for people: curves.png from a run's metrics.csv."""

import io

from PIL import Image

from monet_gan import figures

METRICS = """epoch,seconds,monet_generator_loss,cycle_loss,fid,memorization_distance,mifid,kid
1,10.0,2.5,4.0,,,,
2,9.0,2.0,3.0,150.5,0.3,150.5,0.09
3,9.5,1.8,2.5,,,,
4,9.1,1.7,2.2,140.0,0.31,140.0,0.08
"""


def test_metrics_are_read_per_column_without_the_empty_cells(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS)
    metrics = figures.read_metrics(path)
    assert metrics["cycle_loss"] == [(1, 4.0), (2, 3.0), (3, 2.5), (4, 2.2)]
    assert metrics["fid"] == [(2, 150.5), (4, 140.0)]
    assert "seconds" not in metrics and "epoch" not in metrics


def test_losses_alone_make_one_panel_and_scores_a_second(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS)
    with_scores = Image.open(io.BytesIO(figures.curves_png(figures.read_metrics(path))))
    losses_only = {"cycle_loss": [(1, 4.0), (2, 3.0)]}
    without = Image.open(io.BytesIO(figures.curves_png(losses_only)))
    assert with_scores.format == without.format == "PNG"
    assert with_scores.size == (800, 700) and without.size == (800, 400)


def test_curves_are_written_whole_and_replaced(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS)
    out = tmp_path / "curves.png"
    out.write_bytes(b"an older drawing")
    figures.write_curves(path, out)
    assert Image.open(out).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.csv"]
