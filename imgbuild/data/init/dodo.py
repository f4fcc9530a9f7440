from imgbuild.tasks import project_tasks

DOIT_CONFIG, task_imgbuild = project_tasks(".")
