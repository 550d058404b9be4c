"""Store: the decoded images (`images`: decoding, the cache build), the pixels a study reads
(`image_store.ImageStore`), the records kept beside the cache (`cache_records`: bad images,
duplicates) and the manifests (`manifest`). Nothing is imported here: import the module you
need."""
