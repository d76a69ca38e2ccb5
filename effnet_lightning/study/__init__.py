"""`effnet study`: plan (arms at matched counted cost), launch (in process, per GPU, submitit), evaluation (test
split, measured cost, failure records), results and report (tables, the verdict in words), verdict (paired
intervals), plots; layout names the study folder's files. The command is `effnet_lightning.study.main:main`."""

__all__: list[str] = []
