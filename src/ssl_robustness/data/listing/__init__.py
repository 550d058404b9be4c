"""Listing: the labelled set and what is known of its images before splitting: `labelled`
(LabelledSet), `classes` (the data.classes filters), `item_groups` (data.group_by),
`duplicates` and `near_duplicates` (copies of one image), `purge` (training-side copies of
held-out images). Nothing is imported here: import the module you need."""
