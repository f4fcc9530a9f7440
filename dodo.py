"""`doit` here builds the example batches in batches/ with the offline preview provider."""

from imgbuild.tasks import project_tasks

DOIT_CONFIG, task_imgbuild = project_tasks("batches")
