"""Every table's schema, declared once. The join key across tables is ``post_id``.

Stages import their schema from here; nothing else spells out column types. Embedding widths
depend on the model, so embedding tables are functions of the dimension.
"""

from __future__ import annotations

import pyarrow as pa

STRING_LIST = pa.list_(pa.string())

# -- Where a member sits in the split archive: the fields of io.multizip.Member, in its order, with
# ``member`` for its name. Both plan tables carry them; ingestion and the image stage read them
# back into Members (``Member(*row[MEMBER_COLUMNS])``) and read the member from its volume.
MEMBER_LOCATION = [
    ("member", pa.string()),  # archive member name (PLAN_POSTS: null when the post's JSON is absent)
    ("disk", pa.int32()),  # volume index: 0 is .z01, the last is the .zip
    ("offset", pa.int64()),  # the local header's offset in that volume
    ("compressed_size", pa.int64()),
    ("uncompressed_size", pa.int64()),
    ("method", pa.int16()),  # 0 stored, 8 deflated
    ("crc", pa.uint32()),
    ("flags", pa.uint16()),
]
MEMBER_COLUMNS = tuple(name for name, _ in MEMBER_LOCATION)

# -- Instagram: the ingestion plan (one row per post the archive or the mapping names) -------------
PLAN_POSTS = pa.schema(
    [
        ("post_id", pa.string()),
        ("shard", pa.int32()),
        ("username", pa.string()),
        ("json_file", pa.string()),
        *MEMBER_LOCATION,
        ("category", pa.string()),
        ("followers", pa.int64()),
        ("in_mapping", pa.bool_()),
        ("image_files", STRING_LIST),
        ("missing_images", STRING_LIST),
        ("plan_status", pa.string()),  # null, or the fault already known from names alone
        ("plan_error", pa.string()),
    ]
)

# -- Instagram: one row per mapped image that the image archive holds ------------------------------
PLAN_IMAGES = pa.schema(
    [
        ("post_id", pa.string()),
        ("shard", pa.int32()),
        ("image_index", pa.int16()),
        ("image_file", pa.string()),
        *MEMBER_LOCATION,
    ]
)

# -- Instagram: parsed posts, one file per shard ---------------------------------------------------
POSTS = pa.schema(
    [
        ("post_id", pa.string()),
        ("username", pa.string()),
        ("json_file", pa.string()),
        ("media_id", pa.string()),
        ("shortcode", pa.string()),
        ("typename", pa.string()),
        ("category", pa.string()),
        ("followers", pa.int64()),
        ("caption", pa.string()),
        ("hashtags", STRING_LIST),
        ("likes", pa.int64()),
        ("comments", pa.int64()),
        ("likes_hidden", pa.bool_()),  # the dump gave a negative like count (hidden by the author): likes is null
        ("comments_hidden", pa.bool_()),  # likewise for the comment count
        ("comments_text", pa.string()),
        ("comments_shown", pa.int32()),
        ("comments_source", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),  # Parquet has no seconds unit
        ("is_video", pa.bool_()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("aspect_ratio", pa.float32()),
        ("is_verified", pa.bool_()),
        ("is_private", pa.bool_()),
        ("tagged_users", pa.int32()),
        ("sponsored", pa.bool_()),
        ("accessibility_caption", pa.string()),
        ("location", pa.string()),
        ("caption_length", pa.int32()),
        ("image_files", STRING_LIST),
        ("missing_images", STRING_LIST),
        ("shard", pa.int32()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


# -- Instagram features (one file per shard each; join to POSTS on post_id) ------------------------
def embedding(dim: int) -> pa.DataType:
    """L2-normalised float32 vectors of a fixed width."""
    return pa.list_(pa.float32(), dim)


SENTIMENT = pa.schema(
    [
        ("post_id", pa.string()),
        ("caption_sentiment", pa.string()),  # "POSITIVE" | "NEGATIVE"; null where the text is empty
        ("caption_score", pa.float32()),  # probability of the predicted label
        ("caption_truncated", pa.bool_()),  # text longer than the model's window was cut
        ("comment_sentiment", pa.string()),
        ("comment_score", pa.float32()),
        ("comment_truncated", pa.bool_()),
        ("status", pa.string()),  # the post's status, or the feature's own fault
    ]
)


def text_embeddings(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("post_id", pa.string()),
            ("embedding", embedding(dim)),  # null when the post has no text or was not parsed
            ("truncated", pa.bool_()),
            ("status", pa.string()),
        ]
    )


def image_embeddings(dim: int) -> pa.Schema:
    """One row per mapped image (present or missing) of every post."""
    return pa.schema(
        [
            ("post_id", pa.string()),
            ("image_file", pa.string()),
            ("image_index", pa.int16()),
            ("embedding", embedding(dim)),  # null when missing or unreadable: never a placeholder
            ("status", pa.string()),
            ("error", pa.string()),
            ("format", pa.string()),  # what the bytes are (JPEG, PNG ...), null when unreadable
            ("mode", pa.string()),  # PIL mode as stored (RGB, L, CMYK, RGBA ...), before conversion to RGB
            ("width", pa.int32()),  # as stored
            ("height", pa.int32()),
        ]
    )


def pooled_image_embeddings(dim: int) -> pa.Schema:
    """One row per post: the mean of its readable images' embeddings, re-normalised."""
    return pa.schema(
        [
            ("post_id", pa.string()),
            ("embedding", embedding(dim)),  # null when the post has no readable image
            ("n_images", pa.int16()),
            ("n_embedded", pa.int16()),
            ("status", pa.string()),
        ]
    )


# -- Dreaddit ----------------------------------------------------------------------------------------
# The 116 columns of Dreaddit's train file, in its order (the test file puts ``id`` first).
COLUMNS = [
    "subreddit", "post_id", "sentence_range", "text", "id", "label", "confidence",
    "social_timestamp", "social_karma", "syntax_ari", "lex_liwc_WC", "lex_liwc_Analytic",
    "lex_liwc_Clout", "lex_liwc_Authentic", "lex_liwc_Tone", "lex_liwc_WPS", "lex_liwc_Sixltr",
    "lex_liwc_Dic", "lex_liwc_function", "lex_liwc_pronoun", "lex_liwc_ppron", "lex_liwc_i",
    "lex_liwc_we", "lex_liwc_you", "lex_liwc_shehe", "lex_liwc_they", "lex_liwc_ipron",
    "lex_liwc_article", "lex_liwc_prep", "lex_liwc_auxverb", "lex_liwc_adverb", "lex_liwc_conj",
    "lex_liwc_negate", "lex_liwc_verb", "lex_liwc_adj", "lex_liwc_compare", "lex_liwc_interrog",
    "lex_liwc_number", "lex_liwc_quant", "lex_liwc_affect", "lex_liwc_posemo", "lex_liwc_negemo",
    "lex_liwc_anx", "lex_liwc_anger", "lex_liwc_sad", "lex_liwc_social", "lex_liwc_family",
    "lex_liwc_friend", "lex_liwc_female", "lex_liwc_male", "lex_liwc_cogproc", "lex_liwc_insight",
    "lex_liwc_cause", "lex_liwc_discrep", "lex_liwc_tentat", "lex_liwc_certain", "lex_liwc_differ",
    "lex_liwc_percept", "lex_liwc_see", "lex_liwc_hear", "lex_liwc_feel", "lex_liwc_bio",
    "lex_liwc_body", "lex_liwc_health", "lex_liwc_sexual", "lex_liwc_ingest", "lex_liwc_drives",
    "lex_liwc_affiliation", "lex_liwc_achieve", "lex_liwc_power", "lex_liwc_reward",
    "lex_liwc_risk", "lex_liwc_focuspast", "lex_liwc_focuspresent", "lex_liwc_focusfuture",
    "lex_liwc_relativ", "lex_liwc_motion", "lex_liwc_space", "lex_liwc_time", "lex_liwc_work",
    "lex_liwc_leisure", "lex_liwc_home", "lex_liwc_money", "lex_liwc_relig", "lex_liwc_death",
    "lex_liwc_informal", "lex_liwc_swear", "lex_liwc_netspeak", "lex_liwc_assent",
    "lex_liwc_nonflu", "lex_liwc_filler", "lex_liwc_AllPunc", "lex_liwc_Period", "lex_liwc_Comma",
    "lex_liwc_Colon", "lex_liwc_SemiC", "lex_liwc_QMark", "lex_liwc_Exclam", "lex_liwc_Dash",
    "lex_liwc_Quote", "lex_liwc_Apostro", "lex_liwc_Parenth", "lex_liwc_OtherP",
    "lex_dal_max_pleasantness", "lex_dal_max_activation", "lex_dal_max_imagery",
    "lex_dal_min_pleasantness", "lex_dal_min_activation", "lex_dal_min_imagery",
    "lex_dal_avg_activation", "lex_dal_avg_imagery", "lex_dal_avg_pleasantness",
    "social_upvote_ratio", "social_num_comments", "syntax_fk_grade", "sentiment",
]

# Columns whose values are counts or epoch seconds: integers (the test file writes timestamps as floats).
INT_FEATURES = frozenset({"social_timestamp", "social_karma", "social_num_comments"})
# Columns that are not numeric features.
KEY_COLUMNS = ("subreddit", "post_id", "sentence_range", "text", "id", "label")
FEATURES = [c for c in COLUMNS if c not in KEY_COLUMNS]


DREADDIT_KEYS = [
    ("post_id", pa.string()),  # "dreaddit-<id>": the CSV's unique row id
    ("split", pa.string()),  # train | val | test
    ("text", pa.string()),
    ("label", pa.int8()),  # 1 = stress
    ("subreddit", pa.string()),
]



def _dreaddit_posts() -> pa.Schema:
    """Dreaddit rows as read from the two CSVs: the keys, the original numeric features, and where
    each row came from. Integer-valued counts stay integers; the rest are float64 as in the files."""
    features = [(c, pa.int64() if c in INT_FEATURES else pa.float64()) for c in FEATURES]
    return pa.schema(
        DREADDIT_KEYS
        + [
            ("reddit_post_id", pa.string()),  # the CSV's post_id: the Reddit post, repeated across sentence ranges
            ("dreaddit_id", pa.int64()),  # the CSV's id (null when invalid)
            ("sentence_start", pa.int32()),  # sentence_range "(a, b)" or "[a, b]" -> a, b
            ("sentence_end", pa.int32()),
        ]
        + features
        + [
            ("official_split", pa.string()),  # train | test: the file the row came from
            ("source_file", pa.string()),
            ("source_line", pa.int32()),  # first line of the CSV record (1 = header)
            ("in_both_files", pa.bool_()),  # the same text is also in the other official file
            ("duplicate_text", pa.bool_()),  # the same text appears on another row (either file)
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    )


DREADDIT_POSTS = _dreaddit_posts()

DREADDIT_SYNTH = pa.schema(
    [
        ("post_id", pa.string()),
        ("image_path", pa.string()),  # absolute path of {results}/dreaddit/images/<post_id>.png; null when no image
        ("prompt", pa.string()),  # exactly what the text encoder saw (after the length rule)
        ("prompt_truncated", pa.bool_()),  # the text was reduced to fit the encoder's window
        ("seed", pa.int64()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def dreaddit_clip(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("post_id", pa.string()),
            ("text_embedding", embedding(dim)),
            ("image_embedding", embedding(dim)),  # null when the synthesized image is unusable
            ("text_tokens", pa.int32()),  # BPE tokens of the text (without start/end tokens)
            ("text_windows", pa.int16()),  # 77-token windows averaged into text_embedding
            ("text_truncated", pa.bool_()),  # tokens were dropped (only with long_text: truncate)
            ("status", pa.string()),
        ]
    )


# -- Training (models/<task>/...) --------------------------------------------------------------------
TRAIN_ROWS = pa.schema(
    [
        ("post_id", pa.string()),
        ("split", pa.string()),  # train | val | test
        ("group", pa.string()),  # what the split keeps apart and the bootstrap resamples: influencer (Instagram), Reddit post (Dreaddit)
        ("category", pa.string()),  # per-category metrics: influencer category, subreddit
        ("target", pa.float32()),  # engagement score, or the stress label (0/1)
    ]
)

PREDICTIONS = pa.schema(
    [
        ("post_id", pa.string()),
        ("split", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int32()),
        ("target", pa.float32()),
        ("prediction", pa.float32()),  # engagement score, or P(stress)
        ("predicted_label", pa.int8()),  # classification only
    ]
)

SWEEP_TRIALS = pa.schema(
    [
        ("trial_id", pa.string()),
        ("task", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int32()),
        ("params", pa.string()),  # JSON of the grid point
        ("select_metric", pa.string()),
        ("val_score", pa.float64()),  # on the validation split; the test split is never read here
        ("best_epoch", pa.int32()),
        ("epochs_run", pa.int32()),
        ("seconds", pa.float64()),
        ("checkpoint", pa.string()),
        ("val_metrics", pa.string()),  # JSON
    ]
)


# -- CREMA-D (join key ``clip_id``, the file stem ActorID_Sentence_Emotion_Level) -----------------------
CREMAD_CLIPS = pa.schema(
    [
        ("clip_id", pa.string()),  # e.g. 1001_DFA_ANG_XX
        ("actor_id", pa.int32()),  # null when the name does not parse
        ("sentence", pa.string()),  # code, e.g. DFA
        ("sentence_text", pa.string()),  # "Don't forget a jacket"
        ("emotion", pa.string()),  # ANG | DIS | FEA | HAP | NEU | SAD (the intended emotion)
        ("emotion_index", pa.int8()),  # position in that order
        ("level", pa.string()),  # LO | MD | HI | XX (unspecified)
        ("age", pa.int16()),  # VideoDemographics.csv; null when the actor is not listed
        ("sex", pa.string()),
        ("race", pa.string()),
        ("ethnicity", pa.string()),
        ("split", pa.string()),  # train | val | test, by actor; null when the name does not parse
        ("shard", pa.int32()),
        ("in_sentence_list", pa.bool_()),  # named in SentenceFilenames.csv
        ("audio_path", pa.string()),  # null when no file
        ("audio_bytes", pa.int64()),
        ("audio_seconds", pa.float32()),
        ("audio_sample_rate", pa.int32()),
        ("audio_channels", pa.int16()),
        ("audio_peak_dbfs", pa.float32()),  # peak level, dB re full scale (-inf for digital silence)
        ("audio_status", pa.string()),
        ("audio_error", pa.string()),
        ("video_path", pa.string()),
        ("video_bytes", pa.int64()),
        ("video_seconds", pa.float32()),
        ("video_fps", pa.float32()),
        ("video_width", pa.int32()),
        ("video_height", pa.int32()),
        ("video_codec", pa.string()),
        ("video_status", pa.string()),
        ("video_error", pa.string()),
        # crowd-perceived labels from tabulatedVotes.csv: emoVote letters (ties joined by ':'),
        # agreement share and number of ratings, per presentation: voice (audio-only), face
        # (video-only), av (audio-visual); null when the clip has no row for it
        ("voice_vote", pa.string()),
        ("voice_agreement", pa.float32()),
        ("voice_responses", pa.int16()),
        ("face_vote", pa.string()),
        ("face_agreement", pa.float32()),
        ("face_responses", pa.int16()),
        ("av_vote", pa.string()),
        ("av_agreement", pa.float32()),
        ("av_responses", pa.int16()),
        ("status", pa.string()),  # ok | bad_name (the label); each modality has its own status above
        ("error", pa.string()),
    ]
)


def cremad_egemaps(n: int = 88) -> pa.Schema:
    """eGeMAPS v02 functionals per clip (names, in order, in the file metadata: ``feature_names``)."""
    return pa.schema([("clip_id", pa.string()), ("egemaps", pa.list_(pa.float32(), n)),
                      ("status", pa.string()), ("error", pa.string())])


def cremad_speech(dim: int) -> pa.Schema:
    """A learned speech encoder's last hidden state, averaged over time."""
    return pa.schema([("clip_id", pa.string()), ("embedding", embedding(dim)), ("seconds_used", pa.float32()),
                      ("truncated", pa.bool_()), ("status", pa.string()), ("error", pa.string())])


def cremad_video(dim: int) -> pa.Schema:
    """CLIP image embeddings of the sampled frames, pooled over time."""
    return pa.schema([
        ("clip_id", pa.string()),
        ("embedding_mean", embedding(dim)),  # mean of the L2-normalised frame embeddings (not re-normalised)
        ("embedding_std", embedding(dim)),  # per-dimension standard deviation over the frames (temporal spread)
        ("n_frames", pa.int16()),  # frames embedded
        ("status", pa.string()),
        ("error", pa.string()),
    ])


def cremad_text(dim: int) -> pa.Schema:
    return pa.schema([("clip_id", pa.string()), ("embedding", embedding(dim)), ("status", pa.string())])


CREMAD_PREDICTIONS = pa.schema(
    [
        ("clip_id", pa.string()),
        ("actor_id", pa.int32()),
        ("split", pa.string()),  # val | test
        ("model", pa.string()),  # audio | video | text | speech | fusion
        ("seed", pa.int32()),
        ("emotion", pa.string()),  # intended
        ("predicted", pa.string()),
        ("probabilities", pa.list_(pa.float32(), 6)),  # ANG, DIS, FEA, HAP, NEU, SAD
        ("p_stress", pa.float32()),  # summed probability of cremad.train.stress_emotions
        ("attention", pa.list_(pa.float32())),  # fusion: weight per modality (order in metrics.json); null otherwise
    ]
)
