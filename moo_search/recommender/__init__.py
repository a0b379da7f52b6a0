"""The default objective: a pretrained text encoder turned recommender, fine-tuned with a PEFT
adapter and fused with a collaborative backbone (``objective: run_trial``).

Everything recommender-specific lives here, above the engine (which never imports it):

- :mod:`.config` and :mod:`.spec`: the trial config and the spec class that adds it;
- :mod:`.registries`: datasets, adapter types, backbones, metrics;
- :mod:`.data`, :mod:`.metrics`: datasets, splits, texts; the metric definitions;
- :mod:`.model`: encoder, adapters, backbones, towers, task heads, the layer cache;
- :mod:`.inference`, :mod:`.rerank`, :mod:`.evaluate`: scoring users, lists, metrics;
- :mod:`.train`: loss terms and the training loop; :mod:`.prepare`, :mod:`.trial`: one trial;
- :mod:`.baselines`, :mod:`.reference`: the baselines and the reference front;
- :mod:`.objective`: the objective the engine runs; :mod:`.export`: the production bundle.
"""
