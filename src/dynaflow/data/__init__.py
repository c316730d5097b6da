"""Demonstration data: the NPZ schema (:mod:`~dynaflow.data.schema`), what training sees of it
(:mod:`~dynaflow.data.windows`: split, windows, normaliser) and where demonstrations come from
(:mod:`dynaflow.data.sources`: the gait library, kinematic demonstrations, synthetic data, the PPO teacher).
"""

from dynaflow.data.schema import (
    Dataset,
    DatasetError,
    bundled_dataset,
    load_dataset,
    make_dataset,
    save_dataset,
)
from dynaflow.data.windows import (
    STD_FLOOR,
    Normalizer,
    draw_start_states,
    gather_actions,
    gather_windows,
    relative_xy,
    split_episodes,
    window_index,
)

__all__ = [
    "STD_FLOOR",
    "Dataset",
    "DatasetError",
    "Normalizer",
    "bundled_dataset",
    "draw_start_states",
    "gather_actions",
    "gather_windows",
    "load_dataset",
    "make_dataset",
    "relative_xy",
    "save_dataset",
    "split_episodes",
    "window_index",
]
