"""Data layer: a study's images, from the files on disk to the subsets each seed pretrains on.

The stages, in the order `prepare.py` runs them (`prepare_data`; `list_data` stops before
decoding, for `run --plan`); the rest of the package comes in through `prepare.py` and reads
its output, `study_data.StudyData`:

1. `sources/`   read one on-disk layout into a LabelledSet; one file per layout, registered
                with `register_source` (a new data source: a new file there).
2. `listing/`   the labelled set and what is known of its images before splitting: the class
                filters (`classes.py`), data.group_by groups, duplicates, the held-out purge.
3. `split/`     official or carved train pool / val / test (`splits.py`, the carve in
                `carve.py`; a new split rule goes there), in whole groups, the probe set
                (`probe.py`), leakage; `feasibility.py` is the one place that asks what fits.
4. `subsets/`   the pretraining subsets' plans and draws (`plans.py`), their long-tail
                profiles (a new subset profile: a shape in `profiles.py` and its name in
                `config.data.ImbalanceConfig.profile`), frequency tiers, trade-off, advice.
5. `store/`     the decoded image cache, its records (bad images, duplicates), manifests.

`arrange.py` runs stages 3-4 on a listing; `study_data.py` is the output, `stats.py` reads it
(a new `data stats` / stats.json table goes there), `samplers.py` serves training.
"""
