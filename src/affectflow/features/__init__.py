"""Stage ``features`` (workflow/rules/features.smk): sentiment, SBERT text and CLIP image embeddings per posts shard."""
