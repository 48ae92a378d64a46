"""`python -m monet_gan.paint`: a user's own photos at their own size, and the tiles it paints in."""

import io

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images
from PIL import Image

from monet_gan import networks, paint, tiling, train
from monet_gan.translation import translate


def smooth_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth colour gradients with a little texture (random pixels would
    make every neighbouring pixel differ as much as two tiles could)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(3 * x + 2 * y + phase) for phase in rng.uniform(0, 6, 3)]
    image = 127.5 + 100 * np.stack(channels, axis=-1) + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def save(path, image: np.ndarray, exif_orientation: int | None = None):
    picture = Image.fromarray(image)
    if exif_orientation:
        exif = picture.getexif()
        exif[0x0112] = exif_orientation
        picture.save(path, exif=exif)
    else:
        picture.save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tiny_config, tmp_path_factory):
    """A tiny trained run (32 px), exported: its checkpoint and its SavedModel."""
    run_dir = tmp_path_factory.mktemp("paint") / "run"
    train.train(tiny_config, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def painter(run_dir):
    return paint.load_painter(run_dir)


# --- tiles ---------------------------------------------------------------------------

@pytest.mark.parametrize(("length", "tile", "overlap"), [(700, 32, 8), (450, 64, 16), (32, 32, 8), (33, 32, 0)])
def test_tiles_cover_every_pixel_and_the_last_is_flush_with_the_end(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start:start + tile] = True
    assert covered.all() and starts[0] == 0 and starts[-1] == length - tile
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blending_weights_of_two_overlapping_ramps_sum_to_one():
    tile, overlap = 32, 8
    weights = tiling.ramp(tile, overlap)
    stride = tile - overlap
    assert np.allclose(weights[stride:] + weights[:overlap], 1.0)
    assert weights.min() > 0 and np.all(weights[overlap:stride] == 1.0)


def test_an_identity_painter_gives_the_photo_back_at_any_size():
    photo = random_images(1, 256)[0][:211, :97]
    painted = tiling.paint_in_tiles(lambda tiles: tiles, photo, tile=32, overlap=8, batch_size=3)
    assert np.array_equal(painted, photo)


def test_a_photo_smaller_than_a_tile_is_mirrored_out_and_cut_back():
    calls = []

    def paint_tiles(tiles):
        calls.append(tiles.shape)
        return 255 - tiles

    photo = random_images(1, 64)[0][:20, :50]
    painted = tiling.paint_in_tiles(paint_tiles, photo, tile=32, overlap=8, batch_size=4)
    assert np.array_equal(painted, 255 - photo)
    assert set(calls) == {(4, 32, 32, 3)}  # every call one shape: the last batch filled up


def test_a_256_photo_is_painted_as_translate_paints_it(tiny_config):
    config = tiny_config.replace(image_size=256)
    generator = networks.build_generator(config, name="photo_to_monet")  # as initialised
    photo = random_images(1, 256, seed=3)
    painter = paint.generator_painter(generator, config)
    painted = tiling.paint_in_tiles(painter.tiles, photo[0], tile=256, overlap=64, batch_size=1)
    assert np.array_equal(painted, painter.tiles(photo)[0])  # translate, traced: the tile unchanged
    eager = translate(generator, photo, 256).numpy()[0]  # float rounding of another program
    assert np.abs(painted.astype(int) - eager.astype(int)).max() <= 1


def column_steps(image: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each column and the next: [W - 1]."""
    return np.abs(np.diff(image.astype(float), axis=1)).mean(axis=(0, 2))


def test_a_700x450_photo_keeps_its_size_and_shows_no_seam(painter):
    photo = smooth_photo(450, 700)
    tile, overlap = 32, 8
    painted = tiling.paint_in_tiles(painter.tiles, photo, tile, overlap)
    assert painted.shape == photo.shape and painted.dtype == np.uint8
    borders = {start + tile - 1 for start in tiling.tile_starts(700, tile, overlap)[:-1]}
    borders |= {start - 1 for start in tiling.tile_starts(700, tile, overlap)[1:]}
    steps = column_steps(painted)
    across = steps[sorted(borders)]
    inside = np.delete(steps, sorted(borders))
    assert across.max() <= inside.max()


def test_blending_hides_what_differs_from_tile_to_tile():
    """Tiles painted with a colour cast of their own (as instance normalization gives each tile
    its own statistics) meet at seams without blending, and fade into each other with it."""
    photo = smooth_photo(450, 700)
    rng = np.random.default_rng(5)

    def cast_per_tile(tiles):
        return np.clip(tiles.astype(int) + rng.integers(-20, 21, (len(tiles), 1, 1, 3)), 0, 255).astype(np.uint8)

    def border_and_inside(overlap):
        painted = tiling.paint_in_tiles(cast_per_tile, photo, 32, overlap)
        steps = column_steps(painted)
        borders = sorted({s - 1 for s in tiling.tile_starts(700, 32, overlap)[1:]}
                         | {s + 31 for s in tiling.tile_starts(700, 32, overlap)[:-1]})
        return steps[borders].max(), np.delete(steps, borders).max()

    seams, inside = border_and_inside(overlap=0)
    assert seams > 2 * inside  # the measure sees seams
    across, inside = border_and_inside(overlap=16)
    assert across <= inside


# --- the command ---------------------------------------------------------------------

def test_paints_a_folder_at_each_photos_size_name_and_orientation(run_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    save(photos / "wide.jpg", smooth_photo(45, 70))
    save(photos / "turned.jpg", smooth_photo(40, 60, seed=1), exif_orientation=6)  # shown 40 wide, 60 high
    save(photos / "small.png", smooth_photo(20, 24, seed=2))
    out = tmp_path / "paintings"
    assert paint.main([str(run_dir), str(photos), "--out", str(out)]) == 0
    sizes = {path.name: Image.open(path).size for path in out.iterdir()}
    assert sizes == {"wide.jpg": (70, 45), "turned.jpg": (40, 60), "small.jpg": (24, 20)}
    assert Image.open(out / "wide.jpg").format == "JPEG"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left

    assert paint.main([str(run_dir), str(photos / "*.png"), "--out", str(out), "--format", "png",
                       "--mode", "resize"]) == 0
    with Image.open(out / "small.png") as image:
        assert (image.format, image.size) == ("PNG", (24, 20))


def test_tiles_of_a_multiple_of_the_training_size(run_dir, painter, tmp_path):
    photo = save(tmp_path / "p.jpg", smooth_photo(100, 90))
    assert paint.main([str(run_dir), str(photo), "--out", str(tmp_path / "out"), "--tile", "64"]) == 0
    assert Image.open(tmp_path / "out" / "p.jpg").size == (90, 100)


def test_a_saved_model_paints_as_its_run_folder_does(run_dir, painter, tmp_path):
    served = paint.load_painter(run_dir / "saved_model")
    assert served.image_size == 32
    photo = smooth_photo(70, 50)
    from_checkpoint = tiling.paint_in_tiles(painter.tiles, photo, 32, 8)
    from_saved_model = tiling.paint_in_tiles(served.tiles, photo, 32, 8)
    assert np.abs(from_checkpoint.astype(int) - from_saved_model.astype(int)).max() <= 1
    # --mode resize: at the training size and back, though the SavedModel's own `serve` paints
    # a 70 x 50 photo at 64 x 64, the multiples of 32 nearest it
    resized_by_checkpoint = painter.resized(photo[np.newaxis])[0]
    resized_by_saved_model = served.resized(photo[np.newaxis])[0]
    assert resized_by_saved_model.shape == (70, 50, 3)
    assert np.abs(resized_by_checkpoint.astype(int) - resized_by_saved_model.astype(int)).max() <= 1


@pytest.mark.parametrize(("extra", "message"), [
    (["--tile", "48"], "--tile 48 must be a multiple of the training size, 32"),
    (["--overlap", "20"], "--overlap 20 must be between 0 and half the tile"),
    (["--max-megapixels", "0"], "--max-megapixels must be above 0"),
    (["--mode", "tiles"], "--mode"),
])
def test_bad_flags_are_one_clear_line(run_dir, tmp_path, capsys, extra, message):
    photo = save(tmp_path / "p.jpg", smooth_photo(40, 40))
    assert paint.main([str(run_dir), str(photo), "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_saved_model_paints_tiles_of_its_training_size_only(run_dir, tmp_path, capsys):
    photo = save(tmp_path / "p.jpg", smooth_photo(40, 40))
    assert paint.main([str(run_dir / "saved_model"), str(photo), "--out", str(tmp_path / "out"),
                       "--tile", "64"]) == 2
    assert "tiles of its training size, 32, only" in capsys.readouterr().err


def test_a_folder_that_is_no_run_is_named(tmp_path, capsys):
    photo = save(tmp_path / "p.jpg", smooth_photo(40, 40))
    assert paint.main([str(tmp_path), str(photo), "--out", str(tmp_path / "out")]) == 2
    assert f"SOURCE {tmp_path} is neither a monet_gan run folder" in capsys.readouterr().err


def test_an_unreadable_photo_stops_the_run_or_is_skipped_and_counted(run_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    save(photos / "good.jpg", smooth_photo(40, 40))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    assert paint.main([str(run_dir), str(photos), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{photos / 'broken.jpg'}: not a readable JPEG or PNG image" in err and "--on-bad-record skip" in err
    assert paint.main([str(run_dir), str(photos), "--out", str(out), "--on-bad-record", "skip"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["good.jpg"]
    assert "Skipped 1 unreadable photo" in capsys.readouterr().err


def test_a_photo_over_the_megapixel_limit_is_refused_before_decoding(run_dir, tmp_path, capsys):
    photo = save(tmp_path / "big.png", np.zeros((1000, 1100, 3), np.uint8))
    assert paint.main([str(run_dir), str(photo), "--out", str(tmp_path / "out"), "--max-megapixels", "1"]) == 2
    assert "1100x1000 is 1.1 megapixels, more than --max-megapixels 1" in capsys.readouterr().err


def test_a_painting_never_replaces_its_photo(run_dir, tmp_path, capsys):
    photo = save(tmp_path / "p.jpg", smooth_photo(40, 40))
    before = photo.read_bytes()
    assert paint.main([str(run_dir), str(photo), "--out", str(tmp_path)]) == 2
    assert "would replace the photo itself" in capsys.readouterr().err
    assert photo.read_bytes() == before


def test_tfrecords_are_sent_to_the_export(run_dir, data_dir, tmp_path, capsys):
    assert paint.main([str(run_dir), str(data_dir / "photo_tfrec"), "--out", str(tmp_path / "o")]) == 2
    assert "paint takes JPEG/PNG photos" in capsys.readouterr().err


def test_names_two_photos_share_get_a_number(tmp_path):
    names = paint.output_names(["a/x.jpg", "b/x.jpg", "c/x.png"], tmp_path, ".png")
    assert [p.name for p in names.values()] == ["x.png", "x-1.png", "x-2.png"]


def test_paintings_are_encoded_as_asked():
    image = smooth_photo(10, 12)
    assert Image.open(io.BytesIO(paint.encode(image, "png"))).format == "PNG"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(paint.encode(image, "png")))), image)
    assert Image.open(io.BytesIO(paint.encode(image, "jpeg"))).format == "JPEG"
    assert tf.io.decode_jpeg(paint.encode(image, "jpeg")).shape == (10, 12, 3)
