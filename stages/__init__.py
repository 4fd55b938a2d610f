"""The pipeline's stages, one script each; `dvc.yaml` runs them as `python -m stages.NAME`."""
