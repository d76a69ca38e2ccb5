"""`effnet study`: plan (arms at matched counted cost), launch (in process, per GPU, submitit), results and
verdict (test split, paired intervals), plots. The command is `effnet_lightning.study.main:main`."""

__all__: list[str] = []
