"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node 2``: trains a few steps with DDP on
the CPU (gloo) and saves this process's final weights, so the test can check they agree."""
import sys

import torch

import yolact_edu as ye
from yolact_edu.data import CocoDataset
from yolact_edu.training import distributed
from yolact_edu.training.trainer import Trainer

annotations, images, out_dir = sys.argv[1:4]
assert distributed.init_from_env(), "expected to run under torchrun"
dataset = CocoDataset(annotations, images, max_size=128, augment=True, verbose=False)
cfg = ye.get_config("yolact_tiny").replace(num_classes=dataset.num_classes, class_names=dataset.class_names,
                                           max_size=128)
torch.manual_seed(distributed.rank())          # different initial weights: DDP must broadcast rank 0's
trainer = Trainer(ye.Yolact(cfg), dataset, out_dir=out_dir, batch_size=2, max_iter=4, log_every=2,
                  freeze_bn=True, progress=False, device="cpu")
seen = []


class Recorder(torch.utils.data.Dataset):
    """The training set, noting which images this process was given."""

    def __len__(self):
        return len(dataset)

    def __getitem__(self, index):
        seen.append(index)
        return dataset[index]


trainer.loader.dataset.dataset = Recorder()
summary = trainer.run()
torch.save({"state": trainer.model.state_dict(), "seen": seen, "summary": summary,
            "world_size": distributed.world_size()}, f"{out_dir}/rank{distributed.rank()}.pt")
distributed.cleanup()
