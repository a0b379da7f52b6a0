"""The baselines every study is judged against, each tuned on validation over its knobs' whole
useful range: ranking (:mod:`.ranking`: Random, MostPop, ItemKNN, EASE or SANSA, the content
kNNs, the Hybrid), matrix factorisation (:mod:`.factors`: ALS and BPR from ``implicit``) and
the count baselines of the business tasks (:mod:`.tasks`)."""
