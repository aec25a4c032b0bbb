"""The 116 columns of Dreaddit's train file, in its order (the test file puts ``id`` first)."""

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
