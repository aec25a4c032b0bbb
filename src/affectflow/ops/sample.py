"""Write a small, deterministic copy of both datasets in their published layout, faults included.

The Instagram part is a real Info-ZIP split archive (``zip -s``) with ``info/<user>-<file>`` and
``image/<user>-<file>`` members, the mapping file and ``influencers.txt``, seeded with the real
data's known defects and with deliberate faults, so that tests and the demo exercise every
status the pipeline can record. The Dreaddit part is a CSV pair in the real files' form. The
CREMA-D part (``affectflow.cremad.sample``) is WAVs and FLVs in the published layout with the
emotion planted in voice and picture.

Everything is a function of ``seed``: the same seed gives byte-identical files (zip runs with a
fixed clock and timezone, members are added in sorted order).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

FIXED_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z

CATEGORIES = ["fashion", "beauty", "food", "travel", "fitness", "pet", "family", "interior", "other"]
WORDS = {
    "fashion": ["outfit", "style", "denim", "look", "streetwear", "vintage"],
    "beauty": ["makeup", "skincare", "glow", "lipstick", "routine", "serum"],
    "food": ["brunch", "recipe", "pasta", "vegan", "dessert", "coffee"],
    "travel": ["beach", "mountains", "sunset", "wanderlust", "city", "roadtrip"],
    "fitness": ["workout", "gym", "run", "yoga", "gains", "cardio"],
    "pet": ["puppy", "cat", "walk", "cuddles", "treats", "paws"],
    "family": ["kids", "weekend", "home", "love", "baby", "together"],
    "interior": ["livingroom", "plants", "design", "cozy", "decor", "minimal"],
    "other": ["music", "art", "books", "thoughts", "friends", "life"],
}
POSITIVE = ["love", "amazing", "happy", "beautiful", "best", "great", "wonderful"]
NEGATIVE = ["tired", "sad", "awful", "worst", "annoying", "broken", "stressed"]
COMMENT_KEYS = ["edge_media_to_parent_comment", "edge_media_to_comment", "edge_media_preview_comment"]
SPECIAL_CAPTIONS = [
    "東京の夜景がきれい #東京 #夜景",
    "Доброе утро! Кофе и книги #утро",
    "صباح الخير من دبي #سفر",
    "🔥🔥🔥😍😍",
    "",
]

DREADDIT_SUBREDDITS = ["ptsd", "assistance", "relationships", "survivorsofabuse", "domesticviolence",
                       "anxiety", "homeless", "stress", "almosthomeless", "food_pantry"]
STRESS_WORDS = ["anxious", "panic", "scared", "overwhelmed", "can't sleep", "afraid", "hopeless", "worried", "shaking"]
CALM_WORDS = ["grateful", "relaxed", "fine", "better", "thankful", "calm", "okay", "hopeful", "happy"]
NEUTRAL = ["my landlord", "the rent", "my partner", "work", "my family", "the doctor", "school", "my car", "money"]


MIN_POSTS = 51  # the planted faults sit at fixed post indices up to 50


@dataclass
class SampleSpec:
    seed: int = 0
    influencers: int = 8
    posts_per_influencer: int = 12
    dreaddit_train: int = 60
    dreaddit_test: int = 24
    split_size: str = "64k"
    cremad_actors: int = 10


@dataclass
class _Post:
    user: str
    media_id: str
    node: dict | None
    images: list[str] = field(default_factory=list)
    raw: bytes | None = None  # overrides the JSON encoding of node (faults)


def _which_zip() -> str:
    exe = shutil.which("zip")
    if not exe:
        raise RuntimeError("Info-ZIP `zip` is required to build the sample archive (apt-get install zip)")
    return exe


def split_zip(src_dir: Path, members: list[str], archive: Path, split_size: str) -> list[Path]:
    """Build a split archive of ``members`` (paths relative to ``src_dir``) with Info-ZIP."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    for p in archive.parent.glob(archive.stem + ".z*"):
        p.unlink()
    env = dict(os.environ, TZ="UTC")
    names = sorted(members)
    for n in names:
        os.utime(src_dir / n, (FIXED_MTIME, FIXED_MTIME))
    subprocess.run([_which_zip(), "-X", "-D", "-q", "-s", split_size, str(archive.resolve()), "-@"],
                   input="\n".join(names).encode(), cwd=src_dir, env=env, check=True)
    return sorted(archive.parent.glob(archive.stem + ".z*"))


def rename_member(volumes: list[Path], old: str, new: str) -> None:
    """Rewrite a member's name in place (same length), in its local header and the directory.

    Info-ZIP refuses to store names like ``../x``; real-world archives are not so careful, so the
    sample patches one in to exercise the refusal path.
    """
    assert len(old.encode()) == len(new.encode()), "rename must keep the length"
    hits = 0
    for v in volumes:
        data = v.read_bytes()
        if old.encode() in data:
            hits += data.count(old.encode())
            v.write_bytes(data.replace(old.encode(), new.encode()))
    if hits < 2:
        raise RuntimeError(f"member {old} not found twice (local header + directory) in {volumes}")


MAPPING_HEADER = "influencer_name\tJSON_PostMetadata_file_name\tImage_file_name"


def mapping_row(user: str, json_file: str, images: list[str]) -> str:
    """One line of ``JSON-Image_files_mapping.txt``: the image list is a Python list literal."""
    return f"{user}\t{json_file}\t[{', '.join(repr(n) for n in images)}]"


def write_influencers(path: Path, rows: list[tuple]) -> None:
    """``influencers.txt`` with its header and ``====`` rule; rows are (user, category, followers, followees, posts)."""
    lines = ["Username\tCategory\t#Followers\t#Followees\t#Posts", "=" * 60]
    lines += ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _jpeg(rng: random.Random, size=(96, 72), mode="RGB") -> bytes:
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        d.rectangle([x0, y0, x0 + rng.randrange(8, 40), y0 + rng.randrange(8, 30)],
                    fill=tuple(rng.randrange(256) for _ in range(3)))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (40, 30), (rng.randrange(256), 10, 200, 128)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_jpeg(rng: random.Random) -> bytes:
    """A small JPEG whose frame header claims 60000 x 60000 pixels (a decompression bomb)."""
    data = bytearray(_jpeg(rng, (32, 32)))
    i = data.find(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[i + 5 : i + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(data)


def _caption(rng: random.Random, cat: str, k: int) -> str:
    words = WORDS.get(cat, WORDS["other"])
    mood = rng.choice([POSITIVE, NEGATIVE, POSITIVE])
    body = " ".join(rng.choice(words + mood) for _ in range(rng.randrange(4, 14)))
    tags = " ".join("#" + rng.choice(words) for _ in range(rng.randrange(0, 5)))
    return f"{body.capitalize()} {tags}".strip()


def _comment(rng: random.Random, user: str, i: int) -> dict:
    text = rng.choice(["So nice!", "Love this 😍", "Where is this?", "wow", "Not my style tbh", "🔥", "Great shot"])
    return {"node": {"id": f"{17000000000000000 + i}", "text": text, "created_at": FIXED_MTIME + i,
                     "owner": {"username": f"fan_{rng.randrange(1000)}"}, "edge_liked_by": {"count": rng.randrange(20)}}}


def _node(rng: random.Random, user: str, media_id: str, cat: str, followers: int, k: int, caption: str,
          typename: str) -> dict:
    n_comments = rng.randrange(0, 9)
    comment_key = COMMENT_KEYS[k % 3]
    shown = [_comment(rng, user, k * 100 + j) for j in range(min(n_comments, 5))]
    is_video = typename == "GraphVideo"
    mood = sum(w in caption for w in POSITIVE) - sum(w in caption for w in NEGATIVE)
    rate = 0.03 * (1.4 if is_video else 1.0) * (1 + 0.15 * mood) * rng.lognormvariate(0, 0.35)
    likes = max(0, int(followers * rate))
    token = lambda: "%064x" % rng.getrandbits(256)  # noqa: E731  (CDN URLs: incompressible, as in real dumps)
    node = {
        "__typename": typename,
        "display_url": f"https://scontent.cdninstagram.com/v/{token()}/{media_id}_n.jpg?oh={token()}",
        "display_resources": [{"src": f"https://scontent.cdninstagram.com/v/{token()}/{w}.jpg", "config_width": w,
                               "config_height": w} for w in (640, 750, 1080)],
        "id": media_id,
        "shortcode": f"B{media_id[-9:]}x",
        "dimensions": {"height": 1350 if k % 2 else 1080, "width": 1080},
        "is_video": is_video,
        "accessibility_caption": None if is_video else f"Photo by {user}. May be an image of {rng.choice(WORDS[cat])}.",
        "edge_media_to_caption": {"edges": [{"node": {"text": caption}}] if caption or k % 5 else []},
        "edge_media_preview_like": {"count": likes},
        comment_key: {"count": n_comments, "edges": shown},
        "edge_media_to_tagged_user": {"edges": [{"node": {"user": {"username": f"friend{j}", "id": str(j), "is_verified": False}}}
                                                for j in range(rng.randrange(0, 3))]},
        "edge_media_to_sponsor_user": {"edges": [{"node": {"sponsor": {"username": "brand"}}}] if k % 11 == 3 else []},
        "is_ad": False,
        "location": {"id": "1", "name": "Somewhere"} if k % 4 == 0 else None,
        "taken_at_timestamp": 1_500_000_000 + k * 86_400 + rng.randrange(86_400),
        "owner": {"id": str(zlib.crc32(user.encode()) % 10**9), "username": user, "full_name": user.title(),
                  "is_verified": k % 7 == 0, "is_private": False},
    }
    if k % 2:
        node = {"graphql": {"shortcode_media": node}}  # some dumps wrap the media object
    return node


def make_instagram(out: Path, spec: SampleSpec) -> dict:
    """Write the Instagram sample under ``out``; return what was planted (for tests)."""
    if spec.influencers * spec.posts_per_influencer < MIN_POSTS:
        raise ValueError(f"the sample needs at least {MIN_POSTS} posts to plant every fault "
                         f"(got {spec.influencers} influencers x {spec.posts_per_influencer} posts)")
    rng = random.Random(spec.seed)
    out.mkdir(parents=True, exist_ok=True)
    users = [f"{i:02d}_{rng.choice(['sunny', 'rocket', 'moss', 'lumen', 'pixel', 'atlas'])}{rng.choice(['girl', 'chef', 'trail', 'home', 'paws', 'fit'])}"
             for i in range(spec.influencers)]
    cats = {u: CATEGORIES[i % len(CATEGORIES)] for i, u in enumerate(users)}
    followers = {u: int(rng.lognormvariate(11, 1.2)) + 1000 for u in users}
    posts: list[_Post] = []
    k = 0
    for u in users:
        for j in range(spec.posts_per_influencer):
            media_id = str(1_100_000_000_000_000_000 + rng.randrange(10**17))
            typename = "GraphSidecar" if k % 6 == 1 else "GraphVideo" if k % 9 == 4 else "GraphImage"
            caption = SPECIAL_CAPTIONS[k % 17] if k % 17 < len(SPECIAL_CAPTIONS) else _caption(rng, cats[u], k)
            if k == 30:
                caption = ("A very long caption about everything. " * 300)[:10_000]
            node = _node(rng, u, media_id, cats[u], followers[u], k, caption, typename)
            n_img = rng.randrange(2, 4) if typename == "GraphSidecar" else 1
            images = [f"{media_id}.jpg"] if n_img == 1 else [f"{media_id}_{i}.jpg" for i in range(n_img)]
            posts.append(_Post(u, media_id, node, images))
            k += 1

    planted: dict[str, list[str]] = {key: [] for key in (
        "json_corrupt", "json_empty", "json_invalid", "too_large", "json_missing", "unmapped",
        "mapping_malformed", "unsafe_name", "missing_images", "corrupt_image", "empty_image", "png_image",
        "cmyk_image", "gray_image", "bomb_image", "orphan_image", "duplicate_rows", "unknown_influencer")}
    pid = lambda p: f"{p.user}-{p.media_id}"  # noqa: E731

    # JSON faults
    posts[3].raw = json.dumps(posts[3].node).encode()[:150]
    planted["json_corrupt"].append(pid(posts[3]))
    posts[8].raw = b""
    planted["json_empty"].append(pid(posts[8]))
    posts[14].raw = b"[1, 2, 3]"
    planted["json_invalid"].append(pid(posts[14]))
    posts[21].raw = json.dumps(posts[21].node).encode() + b" " * (3 << 20)  # inflates ~1000x
    planted["too_large"].append(pid(posts[21]))
    missing_json = [posts[i] for i in (5, 40, 77) if i < len(posts)]
    planted["json_missing"] += [pid(p) for p in missing_json]
    unmapped = [posts[i] for i in (12, 50) if i < len(posts)]
    planted["unmapped"] += [pid(p) for p in unmapped]
    malformed = posts[25]
    planted["mapping_malformed"].append(pid(malformed))
    evil = posts[33]
    planted["unsafe_name"].append(evil.user)

    # images and their faults
    staging = Path(tempfile.mkdtemp(prefix="affectflow-sample-"))
    try:
        (staging / "info").mkdir()
        (staging / "image").mkdir()
        image_members: list[str] = []
        special = {
            7: ("corrupt_image", lambda: _jpeg(rng)[:200]),
            11: ("empty_image", lambda: b""),
            16: ("png_image", lambda: _png(rng)),
            20: ("cmyk_image", lambda: _jpeg(rng, mode="CMYK")),
            24: ("gray_image", lambda: _jpeg(rng, mode="L")),
            28: ("bomb_image", lambda: _bomb_jpeg(rng)),
        }
        for i, p in enumerate(posts):
            for j, name in enumerate(p.images):
                if i in (9, 45) and j == 0:  # mapped but absent from the image archive
                    planted["missing_images"].append(f"{p.user}-{name}")
                    continue
                if i in special and j == 0:
                    label, make = special[i]
                    data = make()
                    planted[label].append(f"{p.user}-{name}")
                else:
                    data = _jpeg(rng, (rng.choice([96, 120, 160]), rng.choice([72, 96, 120])))
                member = f"image/{p.user}-{name}"
                (staging / member).write_bytes(data)
                image_members.append(member)
        orphan = f"image/{users[0]}-9999999999999999999.jpg"
        (staging / orphan).write_bytes(_jpeg(rng))
        image_members.append(orphan)
        planted["orphan_image"].append(orphan)

        json_members = []
        for p in posts:
            if p in missing_json:
                continue
            member = f"info/{p.user}-{p.media_id}.info"
            data = p.raw if p.raw is not None else json.dumps(p.node, ensure_ascii=False).encode()
            (staging / member).write_bytes(data)
            json_members.append(member)

        ig = out
        meta_vols = split_zip(staging, json_members, ig / "Post_metadata" / "posts_info.zip", spec.split_size)
        evil_old = f"info/{evil.user}-{evil.media_id}.info"
        evil_new = "../" + evil_old[3:]  # same length, climbs out of the folder
        rename_member(meta_vols, evil_old, evil_new)
        planted["unsafe_name"] = [f"member:{evil_new}"]
        split_zip(staging, image_members, ig / "Post_images" / "posts_image.zip", spec.split_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    # the mapping file: duplicates, a malformed row, an unkeyable row, unmapped posts left out
    lines = [MAPPING_HEADER]
    for i, p in enumerate(posts):
        if p in unmapped:
            continue
        row = mapping_row(p.user, f"{p.media_id}.info", p.images)
        if p is malformed:
            row = f"{p.user}\t{p.media_id}.info\t[{p.images[0]}"  # unquoted, unterminated
        lines.append(row)
        if i % 10 == 2:
            lines.append(row)  # exact duplicate, as in the real file
            planted["duplicate_rows"].append(pid(p))
    lines.append("lonely_row_without_tabs")
    ghost = "zz_ghost"
    lines.append(f"{ghost}\t1234567890123456789.info\t['1234567890123456789.jpg']")
    planted["json_missing"].append(f"{ghost}-1234567890123456789")
    planted["unknown_influencer"].append(ghost)
    (ig / "JSON-Image_files_mapping.txt").write_text("\n".join(lines) + "\n")

    infl = []
    for i, u in enumerate(users):
        cat = "fasion" if cats[u] == "fashion" and i == 0 else cats[u]  # the real file's misspelling
        infl.append((u, cat, followers[u], rng.randrange(100, 2000), rng.randrange(300, 3000)))
    write_influencers(ig / "influencers.txt", infl)
    return {"users": users, "posts": len(posts), "planted": planted}


def _dreaddit_rows(rng: random.Random, n: int, start_id: int, test: bool) -> list[dict]:
    from ..tables import COLUMNS

    rows = []
    for i in range(n):
        label = int(i % 2 == 0) if rng.random() < 0.9 else rng.randrange(2)
        cue = STRESS_WORDS if label else CALM_WORDS
        words = [rng.choice(cue), rng.choice(NEUTRAL), rng.choice(cue + CALM_WORDS + STRESS_WORDS)]
        text = (f"I'm {words[0]} about {words[1]}, and honestly it's {words[2]}. "
                f"My friend said \"it'll pass\", but I don't know, {rng.choice(NEUTRAL)} keeps coming up.")
        if i % 7 == 3:
            text += "\n\nEdit: thanks, everyone."
        a = rng.randrange(0, 20)
        rng_range = f"({a}, {a + 5})" if i % 2 else f"[{a}, {a + 5}]"
        row = {c: round(rng.uniform(0, 100), 2) for c in COLUMNS if c.startswith("lex_")}
        row.update({
            "subreddit": rng.choice(DREADDIT_SUBREDDITS),
            "post_id": f"{rng.randrange(36**5):x}"[:6],
            "sentence_range": rng_range,
            "text": text,
            "id": start_id + i,
            "label": label,
            "confidence": 0.0 if (test and i % 9 == 0) else round(rng.choice([0.6, 0.8, 1.0]), 1),
            "social_timestamp": (1_520_000_000 + rng.randrange(10**7)) + (0.0 if test else 0),
            "social_karma": rng.randrange(0, 200),
            "syntax_ari": round(rng.uniform(-2, 15), 6),
            "social_upvote_ratio": round(rng.uniform(0.5, 1.0), 2),
            "social_num_comments": rng.randrange(0, 40),
            "syntax_fk_grade": round(rng.uniform(0, 12), 6),
            "sentiment": round(rng.uniform(-1, 1), 6),
        })
        if test:
            row["social_timestamp"] = float(row["social_timestamp"])
        rows.append(row)
    return rows


def make_dreaddit(out: Path, spec: SampleSpec) -> dict:
    """A Dreaddit-form CSV pair with the real files' quirks (column order, floats, newlines), plus a
    few malformed records that the posts stage must label rather than drop: a label that is not
    0/1, an empty label, an empty text, an unparsable feature, a reused id, and a record with one
    field too many (an unquoted comma). ``planted`` says which (by file and ``id``)."""
    from ..tables import COLUMNS

    rng = random.Random(spec.seed + 1)
    out.mkdir(parents=True, exist_ok=True)
    train = _dreaddit_rows(rng, spec.dreaddit_train, 100, test=False)
    test = _dreaddit_rows(rng, spec.dreaddit_test, 5000, test=True)
    planted: dict[str, list] = {"label_invalid": [], "text_missing": [], "feature_invalid": [], "duplicate_id": [],
                                "row_malformed": [], "in_both_files": []}
    if len(train) > 20 and len(test) > 8:
        train[5]["label"] = ""
        test[4]["label"] = "stressed"
        planted["label_invalid"] += [("train", train[5]["id"]), ("test", test[4]["id"])]
        train[11]["text"] = "   "
        planted["text_missing"].append(("train", train[11]["id"]))
        train[17]["lex_liwc_Tone"] = "n/a"
        planted["feature_invalid"].append(("train", train[17]["id"]))
        train[20]["id"] = train[19]["id"]  # the second row with this id gets a file:line post_id
        planted["duplicate_id"].append(("train", train[20]["id"]))
        test[2]["text"] = train[3]["text"]  # as three texts in the real files: flagged, not dropped
        planted["in_both_files"] = [("train", train[3]["id"]), ("test", test[2]["id"])]
    test_cols = ["id"] + [c for c in COLUMNS if c != "id"]  # the test file puts id first
    for path, rows, cols in ((out / "dreaddit-train.csv", train, COLUMNS), (out / "dreaddit-test.csv", test, test_cols)):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    if len(test) > 8:
        bad = dict(test[-1], id=9999, text="I can't cope, really")
        line = ",".join(str(bad[c]) for c in test_cols)  # unquoted comma in the text: one field too many
        with open(out / "dreaddit-test.csv", "a", newline="") as fh:
            fh.write(line + "\r\n")
        planted["row_malformed"].append(("test", 9999))
    return {"train": len(train), "test": len(test) + bool(planted["row_malformed"]), "planted": planted}


def make_sample(out: str | Path, spec: SampleSpec | None = None) -> dict:
    """The whole sample: ``out/instagram/...``, ``out/dreaddit/...`` and ``out/cremad/...``."""
    spec = spec or SampleSpec()
    out = Path(out)
    from ..cremad.sample import make_cremad

    info = {"instagram": make_instagram(out / "instagram", spec), "dreaddit": make_dreaddit(out / "dreaddit", spec),
            "cremad": make_cremad(out / "cremad", actors=spec.cremad_actors, seed=spec.seed)}
    from .demo_guard import SAMPLE_MARKER

    for name in ("instagram", "dreaddit", "cremad"):  # tiny demo models are allowed on these folders only
        if (out / name).is_dir():
            (out / name / SAMPLE_MARKER).write_text("synthetic sample written by affectflow sample: not real data\n")
    (out / "SAMPLE.json").write_text(json.dumps({"seed": spec.seed, **info}, indent=2, sort_keys=True) + "\n")
    return info


# -- bulk archives for benchmarks ------------------------------------------------------------------
BULK_POSTS_PER_INFLUENCER = 300  # as in the real dataset


def _bulk_user(args: tuple) -> tuple[list[str], int]:
    """Write one influencer's posts (and one tiny JPEG per image) into ``staging``; return mapping rows.

    A worker function: every influencer has its own seeded generator, so the output does not
    depend on how the influencers are spread over processes.
    """
    staging, seed, i, user, cat, followers, n_posts, jpegs, missing_rate, dup_rate, corrupt_rate = args
    rng = random.Random(f"{seed}:{user}")
    faults = random.Random(f"{seed}:{user}:faults")  # its own stream: the clean posts do not change with the rate
    info, image = Path(staging) / "info", Path(staging) / "image"
    rows: list[str] = []
    written = 0
    for j in range(n_posts):
        k = i * n_posts + j
        media_id = str(1_100_000_000_000_000_000 + rng.randrange(10**17))
        typename = "GraphSidecar" if k % 6 == 1 else "GraphVideo" if k % 9 == 4 else "GraphImage"
        caption = SPECIAL_CAPTIONS[k % 17] if k % 17 < len(SPECIAL_CAPTIONS) else _caption(rng, cat, k)
        n_img = 1 + (k % 3) if typename == "GraphSidecar" else 1
        images = [f"{media_id}.jpg"] if n_img == 1 else [f"{media_id}_{m}.jpg" for m in range(n_img)]
        if rng.random() >= missing_rate:  # ~3.5% of mapped posts have no JSON in the real archive
            node = _node(rng, user, media_id, cat, followers, k, caption, typename)
            raw = json.dumps(node, ensure_ascii=False).encode()
            if corrupt_rate and faults.random() < corrupt_rate:
                # the real archive's faults: ~60% cut-off JSON, ~40% empty files
                raw = raw[: faults.randrange(1, len(raw))] if faults.random() < 0.6 else b""
            (info / f"{user}-{media_id}.info").write_bytes(raw)
            written += 1
        for name in images:
            (image / f"{user}-{name}").write_bytes(jpegs[rng.randrange(len(jpegs))])
        rows.append(mapping_row(user, f"{media_id}.info", images))
        if rng.random() < dup_rate:
            rows.append(rows[-1])
    return rows, written


def make_bulk_instagram(out: str | Path, posts: int, seed: int = 0, split_size: str = "64m",
                        posts_per_influencer: int = BULK_POSTS_PER_INFLUENCER, workers: int | None = None,
                        staging_dir: str | Path | None = None, missing_rate: float = 0.035,
                        dup_rate: float = 0.01, corrupt_rate: float = 0.0) -> dict:
    """A large archive in the published layout, for benchmarks: ``posts`` realistic post JSON files
    (the same generator as the sample, a few KB each) and one tiny JPEG per image.

    It carries the real data's common defects at their real rates (mapped posts without JSON,
    duplicate mapping rows) but none of the sample's rare planted faults; ``corrupt_rate`` makes
    that fraction of the post files faulty (60% cut-off JSON, 40% empty), for the fault-rate
    benchmark. Posts are generated in
    ``workers`` processes; the two archives are zipped concurrently.
    """
    from concurrent.futures import ProcessPoolExecutor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n_users = max(1, -(-posts // posts_per_influencer))
    users = [f"{i:05d}_{rng.choice(['sunny', 'rocket', 'moss', 'lumen'])}{rng.choice(['girl', 'chef', 'trail', 'fit'])}"
             for i in range(n_users)]
    cats = [CATEGORIES[i % len(CATEGORIES)] for i in range(n_users)]
    followers = [int(rng.lognormvariate(11, 1.2)) + 1000 for _ in range(n_users)]
    counts = [min(posts_per_influencer, posts - i * posts_per_influencer) for i in range(n_users)]
    jpegs = [_jpeg(rng, (16, 16)) for _ in range(8)]
    staging = Path(tempfile.mkdtemp(prefix="affectflow-bulk-", dir=staging_dir))
    try:
        (staging / "info").mkdir()
        (staging / "image").mkdir()
        jobs = [(str(staging), seed, i, u, cats[i], followers[i], counts[i], jpegs, missing_rate, dup_rate, corrupt_rate)
                for i, u in enumerate(users)]
        with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
            results = list(pool.map(_bulk_user, jobs, chunksize=max(1, len(jobs) // 64)))
        lines = [MAPPING_HEADER] + [row for rows, _ in results for row in rows]
        (out / "JSON-Image_files_mapping.txt").write_text("\n".join(lines) + "\n")
        write_influencers(out / "influencers.txt", [(u, cats[i], followers[i], rng.randrange(100, 2000), 3000)
                                                    for i, u in enumerate(users)])
        json_members = sorted("info/" + p.name for p in (staging / "info").iterdir())
        image_members = sorted("image/" + p.name for p in (staging / "image").iterdir())
        with ProcessPoolExecutor(2) as pool:
            meta = pool.submit(split_zip, staging, json_members, out / "Post_metadata" / "posts_info.zip", split_size)
            imgs = pool.submit(split_zip, staging, image_members, out / "Post_images" / "posts_image.zip", split_size)
            meta_vols, img_vols = meta.result(), imgs.result()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"posts": posts, "json_members": len(json_members), "images": len(image_members),
            "mapping_rows": len(lines) - 1, "influencers": n_users,
            "metadata_volumes": [str(p) for p in meta_vols], "image_volumes": [str(p) for p in img_vols]}
