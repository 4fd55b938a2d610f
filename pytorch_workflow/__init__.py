"""Shared code for the pipeline's stages: the course's PyTorch workflow, one concern a module."""
