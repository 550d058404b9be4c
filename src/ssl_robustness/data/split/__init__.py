"""Splits: train pool / val / test, official or carved (`splits.make_splits`, the carve in
`carve`), in whole groups (`whole_groups`), the balanced probe set (`probe`), group leakage
across splits (`leakage`); `feasibility` is the one place that asks what fits. Nothing is
imported here: import the module you need."""
