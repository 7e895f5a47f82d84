"""Meta-training: the loop, periodic meta-validation, best/last checkpoints, resume, model card.

| module | holds |
| --- | --- |
| `config.py` | `TrainConfig` (every setting of a run) and `validate_config` |
| `loop.py` | `train` and its loop, validation, saving best.pt and last.pt |
| `prepare.py` | what a run needs before its first iteration: data, learner, sampler, schedule; `init_weights` |
| `run_state.py` | `RunState`: a run's progress and resumable state, with `state_dict` / `load_state_dict` |
| `resume.py` | a resumed run's config (`RESUME_SETTINGS`), putting a checkpoint's state back, shipped models |
| `signals.py` | SIGINT/SIGTERM stop a run after the iteration in progress (`TrainingInterrupted`) |
| `model_card.py` | `make_card` and `hardware_description` |
"""

from playground.training.config import TrainConfig, as_flag, validate_config
from playground.training.loop import progress_bar, train
from playground.training.model_card import hardware_description, make_card
from playground.training.prepare import cosine_schedule, init_weights
from playground.training.resume import RESUME_SETTINGS, continued_seed, training_command
from playground.training.run_state import RunState
from playground.training.signals import TrainingInterrupted
from playground.zoo.checkpoints import write_card

__all__ = [
    "RESUME_SETTINGS",
    "RunState",
    "TrainConfig",
    "TrainingInterrupted",
    "as_flag",
    "continued_seed",
    "cosine_schedule",
    "hardware_description",
    "init_weights",
    "make_card",
    "progress_bar",
    "train",
    "training_command",
    "validate_config",
    "write_card",
]
