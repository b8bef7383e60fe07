"""MLflow tracking: params, per-epoch loss, evaluation metrics and the model, to the configured store."""
from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Mapping

from conf import ModelConf
from jobs.model.network import ModelBundle


def _prepare(uri: str) -> None:
    import mlflow

    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps the plain-directory store in maintenance mode; it is still the right default
        # for a local run with no server, so opt in explicitly.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here, and none needed
    mlflow.set_tracking_uri(uri)


MODEL_PACKAGES = ("cloudpickle", "portrait", "torch")  # what loading the pickled network imports


def model_requirements() -> list[str]:
    """The logged model's pip requirements: the installed versions of ``MODEL_PACKAGES`` (MLflow adds itself).

    What MLflow would infer for this network, named up front: inferring them loads the model in a
    subprocess, 3.3 s of every training run on the workplace machine.
    """
    found = []
    for name in MODEL_PACKAGES:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:  # a spark-submit zip carries portrait without its metadata
            continue
    return found


def log_training(cfg: ModelConf, run_name: str, params: Mapping[str, object], history: list[float],
                 metrics: Mapping[str, float | None], bundle: ModelBundle | None) -> str:
    """One MLflow run with everything about this training; returns its run id."""
    import mlflow

    _prepare(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        for epoch, loss in enumerate(history):
            mlflow.log_metric("train_loss", loss, step=epoch)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        if bundle is not None:
            mlflow.log_dict(bundle.spec.to_dict(), "input_spec.json")
            mlflow.log_dict({t: s.describe() for t, s in bundle.scorers.items()}, "published.json")
            mlflow.pytorch.log_model(bundle.network(), name="model", serialization_format="pickle",
                                     pip_requirements=model_requirements())
            with tempfile.TemporaryDirectory() as directory:  # the whole published model, scorers included
                path = Path(directory) / "bundle.pt"
                path.write_bytes(bundle.to_bytes())
                mlflow.log_artifact(str(path))
        return run.info.run_id


def logged_losses(cfg: ModelConf, mlflow_run_id: str) -> list[float]:
    """The ``train_loss`` a run logged, one value per epoch in order."""
    from mlflow.tracking import MlflowClient

    _prepare(cfg.tracking_uri)
    history = MlflowClient(tracking_uri=cfg.tracking_uri).get_metric_history(mlflow_run_id, "train_loss")
    # MLflow 3 can list a step twice (the run's copy and its logged model's); keep one value per step.
    per_step = {m.step: m.value for m in history}
    return [per_step[step] for step in sorted(per_step)]


def log_backtest(cfg: ModelConf, run_name: str, rows: list[tuple]) -> str:
    """One MLflow run per backtest: each (origin, method, metric) value and its interval (``backtests`` rows)."""
    import mlflow

    _prepare(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({"portrait.job": "backtest", "portrait.run_id": run_name})
        mlflow.log_params({"horizon_days": cfg.horizon_days, "origins": len({r[1] for r in rows})})
        for r in rows:
            if r[6] is not None:
                key = f"{r[1].date().isoformat()}/{r[5]}/{r[4]}"
                values = {key: r[6], f"{key}_ci_low": r[7], f"{key}_ci_high": r[8]}
                mlflow.log_metrics({k: v for k, v in values.items() if v is not None})  # a winner has no interval
        return run.info.run_id
