"""The status vocabulary: every record reaches the output with one of these labels.

What each means, and the design choices behind the fault kinds, is in docs/statuses.md.

``ok`` is the only clean state. Parsed-but-incomplete states (``unmapped``) still carry their
fields; fault states carry nulls and an ``error`` sentence naming the file.
"""

OK = "ok"

# Instagram posts
UNMAPPED = "unmapped"  # JSON in the archive, no row in the mapping file: parsed, no images known
JSON_MISSING = "json_missing"  # mapped post whose JSON is not in the archive
JSON_EMPTY = "json_empty"  # zero bytes or whitespace only
JSON_CORRUPT = "json_corrupt"  # not valid JSON (truncated, garbage)
JSON_INVALID = "json_invalid"  # valid JSON, but not a post object
TOO_LARGE = "too_large"  # declared size or compression ratio past the limits (zip bomb), or out of memory on this one item
READ_ERROR = "read_error"  # bad deflate stream, CRC mismatch, no local header or another member's, a damaged directory entry
UNSUPPORTED = "unsupported"  # encryption or an unknown compression method
UNSAFE_NAME = "unsafe_name"  # member name would escape an output folder
BAD_NAME = "bad_member_name"  # member name is not <user>-<file>
MAPPING_MALFORMED = "mapping_malformed"  # the post's mapping row could not be parsed

# Statuses whose post fields were parsed from JSON (text features can run on them).
PARSED = frozenset({OK, UNMAPPED})

POST_STATUSES = (
    OK, UNMAPPED, JSON_MISSING, JSON_EMPTY, JSON_CORRUPT, JSON_INVALID, TOO_LARGE,
    READ_ERROR, UNSUPPORTED, UNSAFE_NAME, BAD_NAME, MAPPING_MALFORMED,
)

# Dreaddit posts (one row per CSV record; the first fault in this order wins, `error` lists all)
ROW_MALFORMED = "row_malformed"  # field count differs from the header: no field is trusted
ID_INVALID = "id_invalid"  # `id` missing or not an integer: post_id falls back to file and line
DUPLICATE_ID = "duplicate_id"  # `id` seen on an earlier row: post_id falls back to file and line
TEXT_MISSING = "text_missing"  # empty or blank text: no prompt, no image, no text embedding
LABEL_INVALID = "label_invalid"  # label not 0/1: kept out of the split's stratification and of training
FEATURE_INVALID = "feature_invalid"  # a numeric feature or sentence_range did not parse (value null)

DREADDIT_STATUSES = (OK, ROW_MALFORMED, ID_INVALID, DUPLICATE_ID, TEXT_MISSING, LABEL_INVALID, FEATURE_INVALID)
# Rows whose text is trusted: synthesis and CLIP run on them (an image is a function of the text alone).
DREADDIT_HAS_TEXT = frozenset({OK, ID_INVALID, DUPLICATE_ID, LABEL_INVALID, FEATURE_INVALID})

# Dreaddit synthesis and CLIP
BLOCKED = "blocked"  # the safety checker flagged the image: none is kept
SYNTH_FAILED = "synth_failed"  # the pipeline returned a non-finite image (e.g. fp16 overflow in the VAE)
IMAGE_UNREADABLE = "image_unreadable"  # the indexed image could not be opened for CLIP
# Feature stages (sentiment, text and image embeddings). A post that was not parsed keeps its own
# status in every feature table, with null features. The states below are the features' own.
NO_TEXT = "no_text"  # nothing the text model can read: empty, whitespace, or only unknown tokens (emoji)
NON_LATIN = "non_latin"  # scored, but most letters are not Latin script: an English model is unreliable
CONVERTED = "converted"  # a readable image that is not an RGB JPEG (PNG data, CMYK, grayscale, 16-bit): embedded after conversion to 8-bit RGB
REPAIRED = "repaired"  # a JPEG whose end marker is missing but whose scan is complete: decoded and embedded
MISSING = "missing"  # mapped image absent from the image archive
EMPTY = "empty"  # zero-byte image member
CORRUPT = "corrupt"  # not an image, or truncated / undecodable data
NO_IMAGE = "no_image"  # pooled: the post has no embedded image (none mapped, or none readable)
# (an image whose header claims more pixels than features.image.max_pixels gets TOO_LARGE)

TEXT_STATUSES = (OK, NO_TEXT, NON_LATIN)
IMAGE_STATUSES = (OK, CONVERTED, REPAIRED, MISSING, EMPTY, CORRUPT, TOO_LARGE, READ_ERROR, UNSUPPORTED)

# CREMA-D clips: one status per modality (audio_status, video_status) in the clips table; the
# feature tables keep the clip's status, or record the fault their own decoding found.
# (MISSING: no file for a clip the dataset names; EMPTY: a zero-byte file.)
CLIP_BAD_NAME = "bad_name"  # not ActorID_Sentence_Emotion_Level with known codes: no label, kept with this status
UNREADABLE = "unreadable"  # the decoder refuses the file (corrupt header, no stream, truncated data)
SILENT = "silent"  # audio whose peak is below cremad.silence_dbfs: nothing to hear
TOO_SHORT = "too_short"  # shorter than cremad.min_duration_s (audio) or fewer frames than one (video)
CLIP_STATUSES = (OK, MISSING, EMPTY, UNREADABLE, SILENT, TOO_SHORT, CLIP_BAD_NAME)
