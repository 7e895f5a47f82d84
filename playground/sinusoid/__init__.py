"""Sine-wave regression, the MAML paper's toy problem (Finn et al. 2017, section 5.1).

Tasks are waves ``y = A sin(x - phase)`` with ``A ~ U[0.1, 5]``, ``phase ~ U[0, pi]`` and
inputs ``x ~ U[-5, 5]``; a task shows K = 5 or 10 points. Three 1-40-40-1 ReLU regressors
are compared after the same few SGD steps on those K points: MAML's meta-learned
initialisation, a "pretrained" regressor fitted to the pooled points of all training tasks,
and "scratch" (the untrained initialisation).

```python
from playground.sinusoid import SineTaskSampler, load_regressors, x_grid

regressors = load_regressors("assets/sinusoid/sinusoid.pt")
task = SineTaskSampler(seed=3).sample(k_shot=10)
fitted = regressors.fit("maml", task.support_x, task.support_y, steps=10)  # weights untouched
grid = x_grid()
fitted.curves(grid)  # [11, 200]: the curve after each step 0..10
fitted.support_loss  # support MSE after each step
task.true_curve(grid)
```

Modules: `tasks` (the seeded sampler), `model` (the regressor and the functional `fit`),
`train` (the three training functions), `evaluate` (MSE with 95% CI over shared test tasks),
`store` (checkpoint, model card). The library never imports Streamlit.
"""

from playground.sinusoid.evaluate import MSEResult, evaluate, results_table
from playground.sinusoid.explore import Exploration, MethodRun, explore
from playground.sinusoid.model import SineFit, SineRegressor, fit, new_regressor
from playground.sinusoid.store import DEFAULT_PATH, load_regressors, save_regressors, train_and_save
from playground.sinusoid.tasks import SineTask, SineTaskBatch, SineTaskSampler, x_grid
from playground.sinusoid.train import (
    METHODS,
    SineRegressors,
    train_all,
    train_maml,
    train_pretrained,
    train_scratch,
)

__all__ = [
    "DEFAULT_PATH",
    "METHODS",
    "MSEResult",
    "SineFit",
    "SineRegressor",
    "SineRegressors",
    "SineTask",
    "SineTaskBatch",
    "SineTaskSampler",
    "evaluate",
    "fit",
    "load_regressors",
    "new_regressor",
    "results_table",
    "save_regressors",
    "train_all",
    "train_and_save",
    "train_maml",
    "train_pretrained",
    "train_scratch",
    "x_grid",
    "Exploration",
    "MethodRun",
    "explore",
]
