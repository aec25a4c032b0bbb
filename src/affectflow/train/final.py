"""The final scoring: each model kind's configuration chosen on val, scored on test once per seed.

This is the only code that opens the test split, through :class:`TestSplit`, which refuses to
score the same model twice. What reaches ``metrics.json`` per model: the grid point and how it was
chosen (``selected_on: "val"``), the validation figures, the test figures as mean, spread over seeds
and a bootstrap interval of the seed-mean, per-category figures, and the checkpoints with their
data digests. Constant baselines (train mean, train majority label) put the numbers in context.

Stress, with the val split given: before the test split is opened, the ensemble (members among the
selected heads and the fine-tuned models, their weights and the decision threshold) is chosen on
val (:mod:`.ensemble`). The headline is the selection metric (the stress class's F1 by default) of
the model chosen on val. The intervals resample the unit of generalisation
(``train.bootstrap.unit: group``): the Reddit post for Dreaddit, the influencer for engagement.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from .. import __version__, tables
from ..io.parquet import config_digest, provenance, write_json, write_table
from .arrays import DataError, SplitData, open_split
from .config import TrainConfig
from .evaluation import (
    CLASS_METRICS,
    REG_METRICS,
    bootstrap_classification,
    bootstrap_regression,
    classification_metrics,
    regression_metrics,
    summarize_seeds,
)
from .models import modalities_of
from .plots import confusion_matrices, pred_vs_actual

log = logging.getLogger(__name__)

# Published figures on Dreaddit's official 715-row test split (for the README and the report).
STRESS_ANCHORS = {
    "bert_base_f1": {"value": 0.807, "metric": "f1", "source": "Turcan & McKeown 2019 (BERT-base; P .752, R .870)"},
    "mentalroberta_f1_weighted": {"value": 0.818, "metric": "f1_weighted", "source": "MentalRoBERTa (Ji et al. 2022)"},
    "majority_f1": {"value": 0.681, "metric": "f1", "source": "Turcan & McKeown 2019 (majority baseline)"},
}


class TestSplit:
    """The test split, opened once, scoring each final model at most once."""

    def __init__(self, folder: str | Path):
        self.data: SplitData = open_split(folder, "test")
        self.scored: list[str] = []

    def score(self, name: str, predict: Callable[[SplitData], np.ndarray]) -> np.ndarray:
        if name in self.scored:
            raise RuntimeError(f"{name} was already scored on the test split; a final model is scored once")
        self.scored.append(name)
        return predict(self.data)


def _nanmean(values) -> float:
    v = np.asarray(values, np.float64)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def _per_category(kind: str, y: np.ndarray, preds: np.ndarray, cats: np.ndarray, min_rows: int = 2,
                  threshold: float = 0.5) -> dict[str, Any]:
    """Figures per category (seed-mean of each seed's figure); categories with too few rows skipped."""
    out = {}
    for c in sorted({c for c in cats if c is not None}):
        sel = cats == c
        if sel.sum() < min_rows:
            continue
        if kind == "regression":
            per = [regression_metrics(y[sel], p[sel]) for p in preds]
            keys = REG_METRICS
        else:
            per = [classification_metrics(y[sel], (p[sel] >= threshold).astype(np.int64)) for p in preds]
            keys = CLASS_METRICS
        out[c] = {"n": int(sel.sum()), **{k: _nanmean([r[k] for r in per]) for k in keys}}
    return out


def _summarise(kind: str, y: np.ndarray, preds: np.ndarray, cats: np.ndarray, tc: TrainConfig,
               groups: np.ndarray | None = None, threshold: float = 0.5) -> dict[str, Any]:
    """Test figures of one model over its seeds: per-seed metrics, mean, std, bootstrap CI.

    ``groups``: the bootstrap resamples these (rows,) instead of rows; ``threshold``: the decision
    threshold on P(class 1) (classification).
    """
    if kind == "regression":
        per_seed = [regression_metrics(y, p) for p in preds]
        ci = bootstrap_regression(y, preds, tc.bootstrap_resamples, tc.bootstrap_level, tc.bootstrap_seed, groups=groups)
        metrics = REG_METRICS
    else:
        labels = (preds >= threshold).astype(np.int64)
        per_seed = [classification_metrics(y, lab) for lab in labels]
        ci = bootstrap_classification(y, labels, tc.bootstrap_resamples, tc.bootstrap_level, tc.bootstrap_seed,
                                      groups=groups)
        metrics = CLASS_METRICS
    out = {"n": int(len(y)), **summarize_seeds(per_seed, metrics, ci)}
    if kind == "classification":
        out["confusion_mean"] = np.mean([r["confusion"] for r in per_seed], axis=0).tolist()
        out["threshold"] = float(threshold)
    out["per_category"] = _per_category(kind, y, preds, cats, threshold=threshold)
    return out


def _baseline(kind: str, y: np.ndarray, train_target: Mapping[str, float], cats: np.ndarray, tc: TrainConfig,
              groups: np.ndarray | None = None) -> dict:
    const = train_target["mean"] if kind == "regression" else float(train_target["majority_label"])
    return _summarise(kind, y, np.full((1, len(y)), const), cats, tc, groups)


def load_finetune(paths: Sequence[str | Path], test: SplitData, split: str = "test") -> tuple[np.ndarray, list[dict]]:
    """Fine-tuning results (one folder per seed, scored by its own rule) aligned to ``test``'s rows.

    ``split``: ``test`` reads ``test_predictions.parquet``, ``val`` ``val_predictions.parquet``
    (``test`` is then the val split's data).
    """
    rows = test.rows(["post_id"])
    preds, results = [], []
    for p in paths:
        p = Path(p)
        res = json.loads((p / "result.json").read_text())
        if res.get("selected_on") != "val":
            raise DataError(f"{p}: fine-tuning result was not selected on val ({res.get('selected_on')!r})")
        tp = pl.read_parquet(p / f"{split}_predictions.parquet", columns=["post_id", "prediction"])
        if tp["post_id"].is_duplicated().any():
            raise DataError(f"{p}: duplicate post_id values in {split}_predictions.parquet, e.g. "
                            f"{tp.filter(pl.col('post_id').is_duplicated())['post_id'].head(3).to_list()}")
        joined = rows.join(tp, on="post_id", how="left", maintain_order="left")
        if joined["prediction"].null_count():
            raise DataError(f"{p}: no fine-tuned prediction for {joined['prediction'].null_count()} {split} post(s), "
                            f"e.g. {joined.filter(pl.col('prediction').is_null())['post_id'].head(3).to_list()}")
        p_ = joined["prediction"].to_numpy()
        bad = ~np.isfinite(p_)
        if bad.any():  # a NaN is not a null in polars: a diverged run must not score as "no stress"
            raise DataError(f"{p}: {int(bad.sum())} non-finite {split} prediction(s) (NaN/inf), e.g. "
                            f"{joined.filter(pl.Series(bad))['post_id'].head(3).to_list()}; the fine-tuning diverged")
        if p_.min() < 0 or p_.max() > 1:
            raise DataError(f"{p}: {split} predictions outside [0, 1] (min {p_.min():.3g}, max {p_.max():.3g}): "
                            "P(stress) is expected, not logits")
        preds.append(p_)
        results.append(res)
    return np.stack(preds), results


def _finetune_groups(paths: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Fine-tuning seed folders by model name (``clip_finetune``, ``text_embedding_finetune``...)."""
    out: dict[str, list[Path]] = {}
    for p in paths:
        res = json.loads((Path(p) / "result.json").read_text())
        out.setdefault(res.get("name", "clip_finetune"), []).append(Path(p))
    return out


def _val_candidates(selection: Mapping, val_dir: str | Path, ft_groups: Mapping[str, list[Path]]
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Validation labels and each candidate's validation P(stress) per seed, (seeds, rows): the
    selected heads (their checkpoints run on val) and the fine-tuned models (their val_predictions files)."""
    from .trainer import load_checkpoint, predict

    val = open_split(val_dir, "val")
    if val.digest != selection["data_digests"]["val"]:
        raise DataError(f"{val_dir}: digest {val.digest} differs from the selection's {selection['data_digests']['val']}")
    probs: dict[str, np.ndarray] = {}
    for name, chosen in selection["models"].items():
        ps = []
        for t in chosen["trials"]:
            model, _ = load_checkpoint(t["checkpoint"])
            ps.append(predict(model, val, "cpu")[0])
        probs[name] = np.stack(ps)
    for name, paths in ft_groups.items():
        if all((p / "val_predictions.parquet").is_file() for p in paths):
            probs[name] = load_finetune(paths, val, "val")[0]
    return np.asarray(val.y, np.int64), probs


def encoders(cfg: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The configured models behind the features, as the metrics name them: key -> ``{"model",
    "revision"}`` (hub id and revision, or open_clip architecture and pretrained tag/path)."""
    out = {}
    for key, spec in (cfg.get("models") or {}).items():
        if not isinstance(spec, Mapping):
            continue
        if "arch" in spec:
            out[key] = {"model": str(spec["arch"]), "revision": str(spec.get("pretrained"))}
        else:
            out[key] = {"model": str(spec.get("id")), "revision": str(spec.get("revision") or "main")}
    return out


def score_final(cfg: Mapping[str, Any], task: str, selection_path: str | Path, test_dir: str | Path,
                dataset_summary: str | Path, out_dir: str | Path, finetune: Sequence[str | Path] = (),
                val_dir: str | Path | None = None) -> dict[str, Any]:
    """Score every selected model on test (once per seed); write metrics, predictions, plots, checkpoints.

    Args:
        cfg: the config (section ``train``).
        task: ``engagement`` or ``stress``.
        selection_path: the sweep's ``selection.json`` (made on val).
        test_dir: the test split folder; opened only after everything that is chosen is chosen.
        dataset_summary: the dataset stage's summary (digests).
        out_dir: gets ``metrics.json``, ``predictions.parquet``, the plot and ``checkpoints/``.
        finetune: fine-tuned models' seed folders (result.json, val/test predictions).
        val_dir: the val split folder; with it (classification, ``train.stress.ensemble.enabled``)
            the ensemble's members, weights and threshold are chosen on val before test is opened.

    Returns:
        The ``metrics.json`` dict. Keys: ``select_metric``, ``headline`` (metric, model, test figure),
        ``bootstrap`` (resamples, level, ``unit``), ``models`` (per model: params, val, test figures
        with intervals), ``ensemble`` (members, weights, threshold, val score), ``baselines``, ...

    Raises:
        DataError: the selection was not made on val, or the split folders come from different runs.
    """
    from .ensemble import choose_ensemble, combine, combine_seeds
    from .trainer import load_checkpoint, predict

    t0 = time.perf_counter()
    tc = TrainConfig.from_config(cfg)
    head = tc.head(task)
    kind = head.kind
    out_dir = Path(out_dir)
    selection = json.loads(Path(selection_path).read_text())
    if selection.get("selected_on") != "val" or selection.get("task") != task:
        raise DataError(f"{selection_path}: not a {task} selection made on val")
    dataset = json.loads(Path(dataset_summary).read_text())
    ft_groups = _finetune_groups(finetune)

    # everything chosen on val is chosen before the test split is opened
    ensemble, ensemble_skipped = None, None
    if kind == "classification" and val_dir is not None and tc.ensemble.enabled:
        y_val, val_probs = _val_candidates(selection, val_dir, ft_groups)
        if len(np.unique(y_val)) < 2:  # nothing to choose a threshold or members on: say so, score the rest
            ensemble_skipped = f"val holds {len(y_val)} row(s) of a single class"
            log.warning("no ensemble: %s", ensemble_skipped)
        else:
            ensemble = choose_ensemble(y_val, val_probs, head.select_metric, tc.ensemble.max_members,
                                       tc.ensemble.weights, tc.ensemble.threshold)
    if ensemble is not None:
        log.info("ensemble chosen on val: %s weights %s threshold %.2f, val %s %.4f", ensemble["members"],
                 ensemble["weights"], ensemble["threshold"], head.select_metric, ensemble["val_score"])

    test = TestSplit(test_dir)
    if test.data.digest != dataset["digests"]["test"]:
        raise DataError(f"{test_dir}: digest {test.data.digest} differs from the dataset summary's "
                        f"{dataset['digests']['test']}: the split folders are from different runs")
    rows = test.data.rows()
    y = np.asarray(test.data.y, np.float64 if kind == "regression" else np.int64)
    cats = rows["category"].to_numpy()
    groups = rows["group"].to_numpy() if tc.bootstrap_unit == "group" else None
    summarise = lambda preds, threshold=0.5: _summarise(kind, y, preds, cats, tc, groups, threshold)  # noqa: E731
    ckpt_dir = out_dir / "checkpoints"
    models: dict[str, Any] = {}
    mean_preds: dict[str, np.ndarray] = {}
    seed_preds: dict[str, np.ndarray] = {}
    seed_ids: dict[str, list[int]] = {}
    pred_tables = []
    order = [m for m in head.models if m in selection["models"]] + [m for m in selection["models"] if m not in head.models]
    for name in order:
        chosen = selection["models"][name]
        preds, weights, ckpts = [], [], []
        for t in chosen["trials"]:
            model, meta = load_checkpoint(t["checkpoint"])
            if meta["data_digests"] != selection["data_digests"]:
                raise DataError(f"{t['checkpoint']}: trained on other data than the selection names")
            out = test.score(f"{name}/seed{t['seed']}", lambda d: predict(model, d, "cpu"))
            if not np.all(np.isfinite(out[0])):
                raise DataError(f"{t['checkpoint']}: non-finite test predictions ({int((~np.isfinite(out[0])).sum())} rows)")
            preds.append(out[0])
            if out[1] is not None:
                weights.append(out[1].mean(axis=0))
            dst = ckpt_dir / f"{name}-seed{t['seed']}.safetensors"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(t["checkpoint"], dst)
            ckpts.append(str(dst))
        preds = np.stack(preds)
        mods = modalities_of(task, name)
        models[name] = {
            "modalities": list(mods), "params": chosen["params"],
            "head": "linear" if int(chosen["params"].get("hidden", 1)) == 0 else "mlp",
            "val": {head.select_metric: {"mean": chosen["val_mean"], "std": chosen["val_std"]}},
            "grid": chosen["grid"], "best_epochs": [t["best_epoch"] for t in chosen["trials"]],
            "seeds": [t["seed"] for t in chosen["trials"]], "test": summarise(preds),
            "coverage": {m: float(np.mean(np.asarray(test.data.mask[m]))) for m in mods},
            "checkpoints": ckpts,
        }
        if weights:
            models[name]["attention_mean"] = {m: round(float(w), 4) for m, w in zip(mods, np.mean(weights, axis=0))}
        mean_preds[name], seed_preds[name] = preds.mean(axis=0), preds
        seed_ids[name] = [int(t["seed"]) for t in chosen["trials"]]
        pred_tables.append(_pred_table(rows, name, chosen["trials"], preds, kind))

    for name, paths in ft_groups.items():
        ft_preds, ft_results = load_finetune(paths, test.data)
        for r in ft_results:
            test.scored.append(f"{name}/seed{r['seed']}")  # scored once, by its own rule
        first = ft_results[0]
        models[name] = {
            "modalities": ["text", "image"] if first.get("kind", "clip_finetune") == "clip_finetune" else ["text"],
            "params": first["params"],
            "val": {head.select_metric: {k: v for k, v in summarize_seeds(
                [{"val": r["val_score"]} for r in ft_results], ["val"])["val"].items() if k in ("mean", "std")}},
            "best_epochs": [r["best_epoch"] for r in ft_results], "seeds": [r["seed"] for r in ft_results],
            "test": summarise(ft_preds), "device": first.get("device"), "precision": first.get("precision"),
            "seconds": [r.get("seconds") for r in ft_results],
            "model": first.get("model"), "checkpoints": [r["checkpoint"] for r in ft_results],
        }
        mean_preds[name], seed_preds[name] = ft_preds.mean(axis=0), ft_preds
        seed_ids[name] = [int(r["seed"]) for r in ft_results]
        pred_tables.append(_pred_table(rows, name, [{"seed": r["seed"]} for r in ft_results], ft_preds, kind))

    if ensemble is not None:
        missing = [m for m in ensemble["members"] if m not in mean_preds]
        if missing:
            raise DataError(f"ensemble members {missing} have no test predictions")
        p_seeds = combine_seeds(seed_preds, ensemble)
        # seed i combines every member's i-th seed: named by the seeds of the member with the most
        ens_seeds = max((seed_ids[m] for m in ensemble["members"]), key=len)
        test.scored.append("ensemble")  # a combination of the members' test predictions, made once
        models["ensemble"] = {
            "members": ensemble["members"], "weights": ensemble["weights"], "threshold": ensemble["threshold"],
            "of": "per seed i: the weighted average of every member's seed-i P(stress) (a member with fewer "
                  "seeds reuses them in turn); the figure is the mean over seeds",
            "val": {head.select_metric: {"mean": ensemble["val_score"], "std": ensemble["val_std"],
                                         "per_seed": ensemble["val_per_seed"]}},
            "seeds": ens_seeds,
            "test": summarise(p_seeds, ensemble["threshold"]),
            "test_seed_average": {k: v for k, v in summarise(combine(mean_preds, ensemble)[None],
                                                             ensemble["threshold"]).items() if k != "per_category"},
        }
        mean_preds["ensemble"] = p_seeds.mean(axis=0)
        pred_tables.append(_pred_table(rows, "ensemble", [{"seed": s} for s in ens_seeds], p_seeds,
                                       kind, ensemble["threshold"]))

    write_table(out_dir / "predictions.parquet", pa.concat_tables(pred_tables), tables.PREDICTIONS,
                provenance(f"{task}_predictions", {"train": cfg.get("train", {})}, test_digest=test.data.digest))
    plot = _plots(task, out_dir, y, mean_preds, models)
    unit = {"row": "test row", "group": "influencer" if task == "engagement" else "Reddit post"}[tc.bootstrap_unit]
    metrics = {
        "task": task, "kind": kind, "selected_on": "val", "select_metric": head.select_metric,
        "test_scoring": {"split": "test", "scored": test.scored, "once_per_model": len(set(test.scored)) == len(test.scored)},
        "seeds": selection["seeds"],
        "data": {"rows": {**selection["data_rows"], "test": test.data.n},
                 "digests": {**selection["data_digests"], "test": test.data.digest},
                 "excluded": dataset.get("excluded", {})},
        "dataset": {k: dataset[k] for k in ("target", "split", "text_features", "text_overlap_train_test", "label_rate",
                                            "feature_rows_absent", "group", "lexical", "text2_features")
                    if k in dataset},
        "config_digest": config_digest(cfg.get("train", {})),
        "bootstrap": {"resamples": tc.bootstrap_resamples, "level": tc.bootstrap_level, "unit": unit,
                      "groups_in_test": int(len(set(rows["group"].to_list()))) if groups is not None else test.data.n,
                      "of": f"the mean over seeds, resampling {unit}s (all rows of a drawn {unit})"},
        "model_order": list(models),
        "models": models,
        "baselines": {("train_mean" if kind == "regression" else "majority"):
                      _baseline(kind, y, selection["train_target"], cats, tc, groups)},
        "plots": [plot.name],
        "package_version": __version__,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if ensemble is not None:
        metrics["ensemble"] = {k: v for k, v in ensemble.items()}
    elif ensemble_skipped:
        metrics["ensemble_skipped"] = ensemble_skipped
    metrics["headline"] = _headline(models, head.select_metric)
    if task == "stress":
        metrics["anchors"] = STRESS_ANCHORS
        if "image" in models:
            metrics["leakage_check"] = {
                "model": "image",
                "note": "The image is synthesized from the post text alone, so an image-only model can only "
                        "recover what the text implies; an image-only score near or above the text-only score "
                        "would point to label information leaking into the images.",
                **{m: {k: models[m]["test"][k]["mean"] for k in ("accuracy", "f1", "f1_weighted", "f1_macro")}
                   for m in ("image", "text") if m in models},
                "majority": {k: metrics["baselines"]["majority"][k]["mean"] for k in ("accuracy", "f1", "f1_weighted", "f1_macro")},
            }
    metrics["encoders"] = encoders(cfg)
    from ..ops.demo_guard import NOTICE_KEY, notice

    if notice(cfg):
        metrics[NOTICE_KEY] = notice(cfg)  # an upper-case key: the first one in the sorted file
    write_json(out_dir / "metrics.json", metrics)
    log.info("%s: scored %d model(s) x seeds on test in %.1fs", task, len(models), metrics["seconds"])
    return metrics


def _headline(models: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """The figure to quote: the selection metric, of the model best on val (the ensemble when there
    is one: it is chosen on val among all of them)."""
    from .evaluation import sort_key

    name = "ensemble" if "ensemble" in models else min(
        models, key=lambda m: sort_key(metric, models[m]["val"][metric]["mean"]))
    t = models[name]["test"][metric]
    return {"metric": metric, "model": name, "chosen_by": f"val {metric}", "mean": t["mean"], "std": t["std"],
            "ci": t.get("ci")}


def _pred_table(rows: pl.DataFrame, name: str, trials: Sequence[Mapping], preds: np.ndarray, kind: str,
                threshold: float = 0.5) -> pa.Table:
    n = rows.height
    parts = []
    for t, p in zip(trials, preds):
        parts.append(pa.table({
            "post_id": rows["post_id"].to_arrow(), "split": pa.array(["test"] * n),
            "model": pa.array([name] * n), "seed": pa.array(np.full(n, t["seed"], np.int32)),
            "target": rows["target"].to_arrow(), "prediction": pa.array(p.astype(np.float32)),
            "predicted_label": pa.array((p >= threshold).astype(np.int8)) if kind == "classification"
            else pa.nulls(n, pa.int8())}))
    return pa.concat_tables(parts)


def _plots(task: str, out_dir: Path, y: np.ndarray, mean_preds: Mapping[str, np.ndarray], models: Mapping) -> Path:
    if task == "engagement":
        # The panels quote the table's RMSE (mean over seeds of each seed's RMSE), not the RMSE of
        # the seed-mean prediction: one RMSE per model across metrics.json, the tables and the plot.
        rmse = {m: models[m]["test"]["rmse"]["mean"] for m in mean_preds if "rmse" in models[m]["test"]}
        return pred_vs_actual(out_dir / "pred_vs_actual.png", y, mean_preds,
                              "Engagement score on test (influencer split): predicted vs actual", rmse=rmse)
    mats = {m: np.asarray(models[m]["test"]["confusion_mean"]) for m in mean_preds}
    return confusion_matrices(out_dir / "confusion_matrix.png", mats, "Stress on test: confusion (mean over seeds)")
