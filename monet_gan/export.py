"""Exporting a run again: `images.zip` for the competition and a SavedModel of the generator.

    python -m monet_gan.export RUN_DIR [--photos GLOB_OR_DIR] [--out ZIP] [--saved-model DIR]
                                   [--checkpoint best|newest] [--tta] [--mode full|resize]

Training exports at its end; this command writes the exports again, from the run's best or
newest checkpoint, for other photos or into other places (`monet_gan.artifacts`).
"""

import sys

from monet_gan import artifacts, cli
from monet_gan.config import BAD_RECORD_POLICIES, EXPORT_CHECKPOINTS, EXPORT_MODES


def parse_args(argv=None):
    parser = cli.ArgumentParser(prog="python -m monet_gan.export", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by monet_gan.train")
    parser.add_argument("--photos", metavar="GLOB_OR_DIR",
                        help="a folder, glob or zip of TFRecords or JPEG/PNG images, any size "
                             "(default: the run's photos)")
    parser.add_argument("--out", metavar="ZIP", help="default: RUN_DIR/images.zip")
    parser.add_argument("--saved-model", metavar="DIR", help="default: RUN_DIR/saved_model")
    parser.add_argument("--checkpoint", choices=EXPORT_CHECKPOINTS,
                        help="the best checkpoint by FID (when the run scored any) or the newest "
                             "(default: the run's export_checkpoint)")
    parser.add_argument("--tta", action="store_true", default=None,
                        help="average each photo's painting with its mirror image's (default: the run's)")
    parser.add_argument("--mode", choices=EXPORT_MODES,
                        help="a run trained below 256 px: paint the 256 px photos at 256 (full) or at "
                             "the training size and back (resize) (default: the run's export_mode)")
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES,
                        help="a photo that cannot be read: fail (stop, naming it) or skip it "
                             "(default: the run's setting)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    def export():
        args = parse_args(argv)
        artifacts.export_run(args.run_dir, photos=args.photos, out=args.out,
                             saved_model=args.saved_model, on_bad_record=args.on_bad_record,
                             checkpoint=args.checkpoint, tta=args.tta, mode=args.mode)

    return cli.run(export)


if __name__ == "__main__":
    sys.exit(main())
