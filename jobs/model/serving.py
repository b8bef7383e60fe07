"""The model a run scored with, kept on disk so that later incremental steps score with the same one.

One directory per run under ``model.serving_dir``: the network with its input vocabulary
(``bundle.pt``, :meth:`ModelBundle.to_bytes`) and the fitted segment pipeline (``segments/``, MLlib's
own format). Neither holds a user id, so erasure has nothing to remove here.
"""
from __future__ import annotations

import json
from pathlib import Path

from pyspark.ml import PipelineModel

from jobs.model.network import ModelBundle
from jobs.model.segments import SegmentModel


class ServingModelMissing(RuntimeError):
    """Profiles name a model run whose saved model is not under ``model.serving_dir``."""


def serving_path(serving_dir: str, run_id: str) -> Path:
    return Path(serving_dir).absolute() / run_id


def save_serving(serving_dir: str, bundle: ModelBundle, segments: SegmentModel) -> Path:
    """Write the run's network and segment model; returns the directory."""
    directory = serving_path(serving_dir, bundle.run_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bundle.pt").write_bytes(bundle.to_bytes())
    segments.pipeline.write().overwrite().save(str(directory / "segments"))
    (directory / "segments.json").write_text(json.dumps(
        {"k": segments.k, "silhouettes": {str(k): v for k, v in segments.silhouettes.items()},
         "marks": {str(k): list(v) for k, v in segments.marks.items()}}))
    return directory


def load_serving(serving_dir: str, run_id: str) -> tuple[ModelBundle, SegmentModel]:
    """The network and segment model that run ``run_id`` saved."""
    directory = serving_path(serving_dir, run_id)
    if not (directory / "bundle.pt").is_file():
        raise ServingModelMissing(f"profiles were scored by model run {run_id}, but {directory} holds no saved "
                                  f"model; set model.serving_dir to where that run saved it, or run 'portrait full'")
    meta = json.loads((directory / "segments.json").read_text())
    segments = SegmentModel(PipelineModel.load(str(directory / "segments")), int(meta["k"]),
                            {int(k): float(v) for k, v in meta["silhouettes"].items()},
                            {int(k): tuple(v) for k, v in meta.get("marks", {}).items()})
    return ModelBundle.from_bytes((directory / "bundle.pt").read_bytes()), segments
