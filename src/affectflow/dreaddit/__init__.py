"""Stage ``dreaddit`` (workflow/rules/dreaddit.smk): posts, prompts, synthesized images and CLIP embeddings."""
