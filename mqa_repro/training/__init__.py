"""Training: the Trainer (trainer.py: optimizer recipe, sharded steps, evaluation, the loop), its
checkpoints (checkpoint.py), device meshes and shardings (sharding.py), the losses (losses.py), and
what builds on them: converting a run to fewer kv heads (convert.py), multi-device checks
(parallel_check.py)."""
