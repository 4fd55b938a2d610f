"""Reviewing and comparing the pipeline: thin commands over dvc, git and the CI platform.

No stage imports this package, so changing the tooling never reruns the pipeline.
"""
