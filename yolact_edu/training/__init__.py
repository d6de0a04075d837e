"""Training and evaluation: the :class:`~.trainer.Trainer` (AMP, DDP, exact resume), its
learning-rate recipe, sampling, checkpoints, stop signals and COCO evaluation."""
