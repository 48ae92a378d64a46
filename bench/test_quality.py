"""bench/quality.py's bookkeeping: which runs it trains, the table, and how it picks the
variants that beat the tutorial (the benchmark itself needs the competition data and hours).
Beside the script it tests, as the package's tests sit in tests/."""

import argparse

import pytest

import quality


def row(variant, seed, fid, step=1500):
    return {"variant": variant, "seed": seed, "step": step, "fid": fid, "mifid": fid + 1.0,
            "kid": fid / 1000, "seconds_per_step": 0.3, "changes": quality.VARIANTS[variant]}


def test_plan_trains_the_tutorial_with_every_seed_and_never_an_export_only_variant():
    runs = quality.plan_runs(["lsgan", "tta", "history"], seeds=[0, 1], repeat={"lsgan"})
    assert runs == [("tutorial", 0), ("lsgan", 0), ("history", 0), ("tutorial", 1), ("lsgan", 1)]


def test_without_the_tutorial_only_the_named_variants_train():
    runs = quality.plan_runs(["laptop"], seeds=[1, 2], repeat={"laptop"}, with_tutorial=False)
    assert runs == [("laptop", 1), ("laptop", 2)]


def test_the_laptop_variant_trains_as_the_preset_does():
    from monet_gan import config as config_lib

    changes = quality.variant_changes("laptop")
    assert not {"epochs", "time_budget", "fid_every"} & set(changes)  # the benchmark sets the length
    # the benchmark's size, width and export mode: the preset's win
    args = argparse.Namespace(size=64, width=64, export_mode="full")
    trained = quality.variant_config(args, changes, epochs=3, fid_every=0)
    assert trained == config_lib.laptop().replace(epochs=3, time_budget="", fid_every=0)


@pytest.mark.parametrize("size, export_mode, chained", [
    (128, "resize", True), (128, "full", False), (256, "resize", False), (256, "full", False)])
def test_references_are_chained_only_where_the_paintings_went_down_and_back(size, export_mode, chained):
    args = argparse.Namespace(size=size, export_size=256, export_mode=export_mode)
    assert quality.chains_references(args) == chained


def test_runs_painted_another_way_are_not_scored_against_these_references(tmp_path):
    (tmp_path / "augment-seed0.json").write_text('{"variant": "augment"}')  # before --export-mode: resize
    assert quality.painted_otherwise(tmp_path, "resize") is None
    assert "augment-seed0.json was painted with --export-mode resize, not full" in quality.painted_otherwise(
        tmp_path, "full")
    (tmp_path / "augment-seed1.json").write_text('{"variant": "augment", "export_mode": "full"}')
    assert "augment-seed1.json was painted with --export-mode full" in quality.painted_otherwise(tmp_path, "resize")


def test_table_means_the_final_stage_and_a_spread_is_the_largest_seed_difference():
    rows = [row("tutorial", 0, 100.0), row("tutorial", 1, 104.0), row("tutorial", 0, 150.0, step=500),
            row("lsgan", 0, 90.0), row("lsgan", 1, 91.0), row("history", 0, 99.0)]
    text, means = quality.table(rows)
    assert means == {"tutorial": 102.0, "lsgan": 90.5, "history": 99.0}
    assert quality.seed_spreads(rows) == {"tutorial": 4.0, "lsgan": 1.0}  # history: one seed
    lines = text.splitlines()
    assert lines[0].startswith("| variant | changes | seeds | FID at 500 | FID at 1500 | FID per seed at 1500 | spread "
                               "| MiFID at 1500 | KID at 1500 | vs tutorial |")
    assert "| 91.50 | 0.0905 | -11.50 |" in lines[2]  # lsgan: mean MiFID and KID
    assert lines[2].startswith("| lsgan |") and "| -11.50 |" in lines[2]  # best first
    # history ran with seed 0 only: compared with the tutorial's seed 0 (100), not its mean (102)
    assert lines[3].startswith("| history |") and "| -1.00 |" in lines[3]
    assert quality.gains_vs_baseline(rows) == {"lsgan": -11.5, "history": -1.0}
    assert "| 150.00 | 102.00 | 100.00 / 104.00 | 4.00 |" in lines[-1]  # tutorial: stage means, per seed


def test_the_identity_row_comes_last_with_its_score_under_every_stage():
    rows = [row("tutorial", 0, 100.0), row("tutorial", 1, 104.0), row("tutorial", 0, 150.0, step=500),
            row("lsgan", 0, 90.0)]
    identity = {"variant": "identity", "fid": 110.0, "mifid": 110.0, "kid": 0.125}
    text, means = quality.table(rows, identity)
    *_, last = text.splitlines()
    assert last == "| identity | the photos themselves | - | 110.00 | 110.00 | - | - | 110.00 | 0.1250 | +8.00 | - |"
    assert "identity" not in means
    assert text.splitlines()[:-1] == quality.table(rows)[0].splitlines()


def test_scores_against_a_chained_reference_also_show_the_fid_against_the_unchanged_paintings():
    rows = [{**row("tutorial", 0, 100.0), "fid_unchanged": 112.0}, {**row("lsgan", 0, 90.0), "fid_unchanged": 108.0}]
    identity = {"variant": "identity", "fid": 110.0, "mifid": 110.0, "kid": 0.125, "fid_unchanged": 115.0}
    lines = quality.table(rows, identity)[0].splitlines()
    assert "| KID at 1500 | FID vs unchanged paintings at 1500 | vs tutorial |" in lines[0]
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2].startswith("| lsgan |") and "| 0.0900 | 108.00 | -10.00 |" in lines[2]
    assert lines[-1].endswith("| 0.1250 | 115.00 | +10.00 | - |")


@pytest.mark.parametrize(("spreads", "expected"), [
    ({"tutorial": 4.0, "lsgan": 1.0, "history": 1.0}, ["lsgan"]),
    ({"tutorial": 2.0, "lsgan": 1.0, "history": 1.0}, ["lsgan", "history"]),
    ({"tutorial": 2.0, "lsgan": 1.0, "history": 3.5}, ["lsgan"]),  # its own seeds disagree more
    ({"tutorial": 12.0, "lsgan": 1.0, "history": 1.0}, []),
])
def test_only_gains_larger_than_both_seed_spreads_count(spreads, expected):
    gains = {"lsgan": -11.5, "history": -3.0, "best": -22.0, "resnet": 8.0}
    spreads = {**spreads, "resnet": 0.0}  # and `best` has one seed
    assert quality.beat_the_baseline(gains, spreads) == expected


def test_another_baseline_takes_the_tutorials_place_in_the_column_the_gains_and_the_winners():
    rows = [row("tutorial", 0, 120.0), row("tutorial", 1, 121.0), row("average", 0, 111.0),
            row("average", 1, 112.0), row("lsgan", 0, 113.0), row("history", 0, 105.0), row("history", 1, 108.0)]
    identity = {"variant": "identity", "fid": 123.0, "mifid": 123.0, "kid": 0.06}
    text, means = quality.table(rows, identity, baseline="average")
    lines = text.splitlines()
    assert "| KID at 1500 | vs average | s/step |" in lines[0]
    # lsgan beats the tutorial by 7 but is 2 worse than `average` on the seed both ran
    assert quality.gains_vs_baseline(rows, "average") == {"tutorial": 9.0, "lsgan": 2.0, "history": -5.0}
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| history", "| average", "| lsgan", "| tutorial",
                                                            "| identity"]
    assert "| +0.00 |" in lines[3] and lines[-1].endswith("| +11.50 | - |")  # identity vs average's mean
    spreads = quality.seed_spreads(rows)
    assert quality.beat_the_baseline(quality.gains_vs_baseline(rows), spreads) == ["history", "average"]
    assert quality.beat_the_baseline(quality.gains_vs_baseline(rows, "average"), spreads, "average") == ["history"]
    assert quality.beat_the_baseline({"history": -5.0}, spreads, "laptop") == []  # no laptop runs


def test_runs_with_a_time_budget_are_compared_where_their_budgets_ended():
    rows = [row("tutorial", 0, 100.0, step=0), row("tutorial", 1, 104.0, step=0), row("lsgan", 0, 90.0, step=0)]
    text, means = quality.table(rows)
    assert means == {"tutorial": 102.0, "lsgan": 90.0}
    assert "| FID at the end | FID per seed at the end |" in text.splitlines()[0]
