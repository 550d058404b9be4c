"""Data layer: sources -> labelled set -> splits -> long-tail subsets -> groups -> manifests."""
