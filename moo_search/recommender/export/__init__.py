"""Export a chosen trial as a package production can load, and load it back.

Bundle layout (``DIR``)::

    config.yaml          the resolved trial config; `moo-search trial DIR/config.yaml` re-runs it
    adapter/             the adapter in standard PEFT format (PeftModel.from_pretrained)
    heads.safetensors    ID embeddings, item bias, CTR head, like-rates
    backbone.safetensors the closed-form collaborative backbone W (fusion.cf ease/itemknn)
    catalog.json         item ids and texts, user ids and texts, features, train counts
    seen.npz             items each known user interacted with (never recommended again),
                         and their train rows (the backbone scores them as x_u W)
    metrics.json         validation/test metrics, objectives, the front, the selection rule
    manifest.json        versions, base model and data fingerprints, SHA-256 of every file
    MODEL_CARD.md        what it is, how it was chosen, how to load it
    MLmodel, conda.yaml, python_env.yaml, requirements.txt, input_example.json,
    serving_input_example.json
                         the bundle as an MLflow model (see :mod:`moo_search.recommender.export.pyfunc`)
"""

from moo_search.export._select import Selection, select_row, select_trial
from moo_search.recommender.export._bundle import export_trial
from moo_search.recommender.export._exported import ExportedRecommender
from moo_search.recommender.export._load import load_exported
from moo_search.recommender.export._register import register_bundle
from moo_search.recommender.export._verify import verify_export
from moo_search.recommender.model.encoder import base_model_fingerprint

__all__ = [
    "ExportedRecommender",
    "Selection",
    "base_model_fingerprint",
    "export_trial",
    "load_exported",
    "register_bundle",
    "select_row",
    "select_trial",
    "verify_export",
]
