"""The pipeline's stages, one script each; `dvc.yaml` runs them as `python -m stages.NAME`.

Python imports this package before the stage's own module, so `params.yaml` is checked here,
before any stage loads torch: a typo fails in a fraction of a second, not after the imports.
"""

from pytorch_workflow.errors import exit_on_user_error
from pytorch_workflow.params import load_params

exit_on_user_error(load_params)()
