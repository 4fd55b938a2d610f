"""Every file the pipeline reads or writes, declared once in `dvc.yaml`'s `vars: paths`.

`dvc.yaml` refers to them as `${paths.NAME}`; the stages read them here, so a path is
never written twice.
"""

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from pytorch_workflow.errors import UserError

PIPELINE_FILE = "dvc.yaml"


@dataclass(frozen=True)
class Paths:
    raw_data: Path  # the folder of the CSVs that the prepare stage depends on
    dataset: Path
    split: Path  # which rows of the dataset are train rows
    features: Path
    split_metrics: Path
    model: Path
    train_metrics: Path
    loss_table: Path
    test_predictions: Path
    evaluate_metrics: Path
    predictions_table: Path
    predictions_figure: Path
    loss_figure: Path
    export_dir: Path
    live: Path  # DVCLive's folder


def _pipeline(pipeline_file: str | Path) -> dict:
    try:
        with open(pipeline_file, encoding="utf-8") as file:
            pipeline = yaml.safe_load(file)
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{pipeline_file}: cannot read the pipeline ({error})") from None
    return pipeline if isinstance(pipeline, dict) else {}


def artifact_name(pipeline_file: str | Path = PIPELINE_FILE) -> str:
    """The model's name in the registry: the one artifact `dvc.yaml` declares."""
    artifacts = list(_pipeline(pipeline_file).get("artifacts") or {})
    if len(artifacts) != 1:
        raise UserError(
            f"{pipeline_file}: expected one artifact under artifacts:, found {len(artifacts)}"
        )
    return artifacts[0]


def load_paths(pipeline_file: str | Path = PIPELINE_FILE) -> Paths:
    declared: dict[str, str] = {}
    for entry in _pipeline(pipeline_file).get("vars", []):
        if isinstance(entry, dict) and isinstance(entry.get("paths"), dict):
            declared = entry["paths"]
    missing = [field.name for field in fields(Paths) if field.name not in declared]
    if missing:
        raise UserError(f"{pipeline_file}: vars.paths is missing {', '.join(missing)}")
    return Paths(**{field.name: Path(declared[field.name]) for field in fields(Paths)})
