"""CREMA-D: tri-modal (audio, video, text) emotion and a stress proxy (workflow/rules/cremad.smk)."""
