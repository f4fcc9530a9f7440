"""`doit` here builds the example batches in batches/ with the offline preview provider.

pyproject.toml's ``[tool.imgbuild] project`` names batches/ as the project, so this folder finds it
the same way every `imgbuild` command run here does."""

from imgbuild.tasks import project_tasks

DOIT_CONFIG, task_imgbuild = project_tasks()
