"""The trial config: what one fine-tune is (data, model, adapter, fusion, loss, train,
re-ranking, evaluation). Names of registered things are checked against their registries."""

from moo_search.recommender.config._adapter import AdapterConfig, AdapterType
from moo_search.recommender.config._data import (
    TRIAL_SECTIONS,
    BookCrossingParams,
    CsvParams,
    DataConfig,
    ItemText,
    SplitConfig,
    SyntheticParams,
)
from moo_search.recommender.config._model import (
    FusionConfig,
    ModelConfig,
    TinyModelConfig,
)
from moo_search.recommender.config._train import (
    EvalConfig,
    LossConfig,
    LossWeights,
    RerankConfig,
    TrainConfig,
)

__all__ = [
    "TRIAL_SECTIONS",
    "AdapterConfig",
    "AdapterType",
    "BookCrossingParams",
    "CsvParams",
    "DataConfig",
    "EvalConfig",
    "FusionConfig",
    "ItemText",
    "LossConfig",
    "LossWeights",
    "ModelConfig",
    "RerankConfig",
    "SplitConfig",
    "SyntheticParams",
    "TinyModelConfig",
    "TrainConfig",
]
