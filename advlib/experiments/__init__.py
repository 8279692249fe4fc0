"""Experiments beyond Table 1 whose results live in one sealed document each (``advlib.records.write_document``).

* ``store``: the document of an experiment — attack runs keyed by what they depend on (model, variant, the
  ``AttackSpec``'s config, n, seed), lookups by that key, masks and summaries of stored runs;
* ``session``: the models, images and open document of one run, and the stored, resumable attack runs;
* ``measures``: per-example comparisons of two runs and quantiles of a measured quantity;
* ``released_settings``, ``released_items``, ``released_ablations``: ablations of the TRADES authors' released
  MNIST SmallCNN (chapter 12, ``results/released/ablations-*.json``);
* ``large_linf``: ablations of the large profile's ℓ∞-trained models (chapter 10,
  ``results/beyond/large-linf-ablations.json``);
* ``protocol_rows``: Table 1 models trained again on a CPU, compared image by image with their records, and the
  paper's PGD protocol (start at x; the authors' end-only clamp) added as rows (``results/<profile>/retrain-check.json``);
* ``reading``: how chapters word the stored numbers (a percentage, a share of a gap);
* ``migrate``: the one-off conversion of the results files written before the documents were sealed;
* ``cli``: ``python -m advlib released-ablations`` and ``python -m advlib large-linf-ablations``.

Importing this package runs nothing and loads no model.
"""
