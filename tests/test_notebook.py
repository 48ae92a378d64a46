"""Runs the Kaggle notebook top to bottom with the tiny preset, so it cannot rot."""

import zipfile
from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "monet_cyclegan.ipynb"


def test_notebook_trains_and_writes_images_zip(tmp_path, data_dir):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = "\n".join([
        'PRESET = "tiny"',
        f'DATA_DIR = "{data_dir}"',
        f'OUT_DIR = "{tmp_path}"',
        'OVERRIDES = {"steps_per_epoch": 1}',
        'PACKAGE_SOURCE = "unused: monet_gan is installed"',
    ])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "with 1 replica(s)" in outputs
    pictures = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if "image/png" in o.get("data", {})]
    assert len(pictures) == 3  # the sample grid, the curves, and photos beside their paintings
    assert "10 paintings in" in outputs
    with zipfile.ZipFile(tmp_path / "images.zip") as archive:
        assert len(archive.namelist()) == 10
    assert (tmp_path / "monet_gan_run" / "checkpoints" / "checkpoint").exists()
    assert (tmp_path / "monet_gan_run" / "saved_model" / "saved_model.pb").exists()
