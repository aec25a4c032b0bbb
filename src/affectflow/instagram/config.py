"""Typed view of the ``instagram`` config section (workflow/rules/ingest.smk)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class InstagramConfig:
    """The ``instagram`` section with paths resolved under ``root`` (archives, mapping, influencers)."""

    root: Path
    metadata_zip: Path
    images_zip: Path
    mapping: Path
    influencers: Path
    shards: int
    max_member_bytes: int
    max_compression_ratio: float
    row_group_rows: int
    row_group_bytes: int = 1 << 28

    @classmethod
    def from_config(cls, cfg: Mapping) -> "InstagramConfig":
        """From a config whose ``instagram`` section is complete (validated, defaults filled).

        Raises:
            KeyError: a key of the section is missing.
        """
        ig = cfg["instagram"]
        root = Path(ig["root"])
        return cls(
            root=root,
            metadata_zip=root / ig["metadata_zip"],
            images_zip=root / ig["images_zip"],
            mapping=root / ig["mapping"],
            influencers=root / ig["influencers"],
            shards=int(ig["shards"]),
            max_member_bytes=int(ig["max_member_bytes"]),
            max_compression_ratio=float(ig["max_compression_ratio"]),
            row_group_rows=int(ig["row_group_rows"]),
            row_group_bytes=int(ig.get("row_group_bytes", 1 << 28)),
        )

    def require_inputs(self) -> None:
        """Raise FileNotFoundError naming the config key of a dataset file that is not there."""
        from ..config import require_inputs

        require_inputs({"instagram.metadata_zip": self.metadata_zip, "instagram.images_zip": self.images_zip,
                        "instagram.mapping": self.mapping,
                        "instagram.influencers": self.influencers}, root=("instagram.root", self.root))
