"""The status vocabulary: every record reaches the output with one of these labels.

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
TOO_LARGE = "too_large"  # declared size or compression ratio past the limits (zip bomb)
READ_ERROR = "read_error"  # bad deflate stream, CRC mismatch, no local header
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
