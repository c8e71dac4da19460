"""`gradsign ensemble RESULTS.csv [MORE.csv ...]`: fit the rank ensemble on a held-out split and evaluate it.

The tables are joined on `index` (`--on hash` for NAS-Bench-101; a GradSign table's `score` column is the proxy
`gradsign`), then with the truth.
A seeded `--train-fraction` of the joined networks fits the rule (`gradsign_rs.proxies.ensemble.fit`); every
statistic reported is computed on the other networks only, for the ensemble and for each single proxy alike.
`--fixed` evaluates a rule fixed without labels on every network (`--orientation consensus`: each proxy's sign chosen
by agreement with the others, no label read); `--rule` one written by an earlier report (fitted on another space or
dataset, transferred with its orientation and weights). `--compare` adds other reports' rules as rows evaluated on the
same networks. `--scores` writes a fixed rule's value and rank for every network of the tables, and `--truth none`
skips the evaluation: a ranking for a space with no labels. `--train-size N1,N2,...` (few-shot) fits the rule on
`--splits` seeded draws of N networks from the training split (and once on the whole split, for reference) and
evaluates each fit on the same held-out networks: few_shot.md and few_shot.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gradsign_rs._core import GradSignError
from gradsign_rs.data import data_root
from gradsign_rs.truth import proxy_table, read_table

# How many of the best networks a --truth none ranking report lists.
RANKING_SHOWN = 10

if TYPE_CHECKING:
    from gradsign_rs.proxies.ensemble import EnsembleRule
    from gradsign_rs.report import Evaluation


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="fit a rank ensemble of proxies on a held-out split and evaluate it on the rest",
        description=__doc__,
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS.csv", help="`gradsign batch` tables to join on index")
    parser.add_argument(
        "--truth",
        default=None,
        metavar="TRUTH.csv",
        help="accuracies (default: nb201/nb201_cifar10.csv in $GRADSIGN_DATA); 'none' evaluates nothing: a --fixed "
        "or --rule rule ranks networks that have no label (with --scores)",
    )
    parser.add_argument("--target", default="c10valid_test_200ep", help="accuracy column (default c10valid_test_200ep)")
    parser.add_argument(
        "--on", default="index", help="column joining the tables and the truth (default index; NB101: hash)"
    )
    parser.add_argument(
        "--mean-duplicates",
        action="store_true",
        help="average truth rows that share a key (NASLib's NB101 sample lists some cells several times)",
    )
    parser.add_argument("--proxies", default=None, help="comma-separated candidates (default: every proxy column)")
    parser.add_argument("--train-fraction", type=float, default=0.2, help="share of networks used to fit (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/evaluation split")
    parser.add_argument("--max-size", type=int, default=4, help="most proxies in the rule (default 4)")
    parser.add_argument(
        "--aggregation",
        choices=("fit", "mean", "log"),
        default="fit",
        help="combine ranks by their mean or by the mean of their logs; fit (default): whichever "
        "fits the training split better",
    )
    parser.add_argument(
        "--fixed",
        default=None,
        metavar="P1,P2,...",
        help="label-free: evaluate this fixed rule (each proxy larger-is-better, weight 1) on every "
        "network, fitting nothing (aggregation: --aggregation, log when 'fit')",
    )
    parser.add_argument(
        "--orientation",
        choices=("larger", "consensus"),
        default="larger",
        help="with --fixed: larger (default) takes every proxy as larger-is-better; consensus gives the proxies "
        "the signs under which they agree most (pairwise Spearman), reading no label",
    )
    parser.add_argument(
        "--rule",
        default=None,
        metavar="ENSEMBLE.json",
        help="evaluate the rule of an earlier report (its ensemble.json: proxies, orientation, weights, "
        "aggregation) unchanged on every network, fitting nothing: a rule fitted elsewhere, transferred",
    )
    parser.add_argument(
        "--train-size",
        default=None,
        metavar="N1,N2,...",
        help="few-shot: fit on N networks drawn from the training split (--splits seeded draws each, plus the "
        "whole split for reference), every fit evaluated on the same held-out networks",
    )
    parser.add_argument("--splits", type=int, default=10, help="few-shot: seeded draws per training size (default 10)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="ENSEMBLE.json",
        help="also evaluate the rule of this earlier report (a label-free one, say) on the same evaluation networks, "
        "as the row 'rule <folder>'; repeatable",
    )
    parser.add_argument(
        "--scores",
        default=None,
        metavar="OUT.csv",
        help="write a --fixed or --rule rule's value and rank (1: predicted best) for every network of the tables, "
        "labelled or not",
    )
    parser.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="write ensemble.md and ensemble.json here (few_shot.* with --train-size, ranking.* with --truth none)",
    )
    parser.add_argument("--notes", default="", help="a paragraph for the report")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gradsign_rs.proxies import ensemble as ens
    from gradsign_rs.spaces import nb201

    transferred = _read_rule(args) if args.rule else None
    # Sorted by network, so the seeded split does not depend on the order rows were appended in.
    scored = proxy_table(args.results, on=args.on).sort_index()
    available = [c for c in scored.columns if c != "arch"]
    fixed = [p.strip() for p in args.fixed.split(",") if p.strip()] if args.fixed else None
    if transferred:
        fixed = list(transferred.proxies)
    candidates = fixed or ([p.strip() for p in args.proxies.split(",") if p.strip()] if args.proxies else available)
    unknown = sorted(set(candidates) - set(available))
    if unknown:
        raise GradSignError(f"no column(s) {unknown} in the joined tables; proxies there: {available}")
    sizes = _sizes(args.train_size) if args.train_size else None
    if args.orientation != "larger" and (not fixed or transferred):
        raise GradSignError("--orientation orients a --fixed rule; a fitted or --rule rule has its orientation")
    if sizes and fixed:
        raise GradSignError("--train-size fits the rule on few networks; a --fixed or --rule rule fits nothing")
    unlabelled = args.truth is not None and args.truth.lower() == "none"
    if args.compare and (sizes or unlabelled):
        raise GradSignError("--compare adds rows to one evaluation: not with --train-size or --truth none")
    compared = _compared(args.compare, available)
    if (args.scores or unlabelled) and not fixed:
        raise GradSignError("--scores and --truth none rank with a rule fixed in advance: give --fixed or --rule")
    if args.splits < 1:
        raise GradSignError(f"--splits must be at least 1, got {args.splits}")
    # A label-free rule is set on every network scored, labelled or not: its orientation reads no accuracy.
    label_free = _label_free_rule(args, scored, fixed, transferred) if fixed else None
    if args.scores or unlabelled:
        assert label_free is not None  # both were refused above without --fixed or --rule
        ranked = _ranked(scored, label_free)
        if args.scores:
            _write_scores(Path(args.scores), ranked, args.on)
        if unlabelled:
            return _emit(args, "ranking", *_ranking(args, scored, ranked, label_free))
    truth = read_table(
        args.truth or data_root() / "nb201" / "nb201_cifar10.csv",
        on=args.on,
        columns=[args.target],
        mean_duplicates=args.mean_duplicates,
    )
    table = scored.join(truth[[args.target]], how="inner").dropna(subset=[args.target])
    if len(table) < 20:
        raise GradSignError(f"only {len(table)} networks are in every table and the truth; at least 20 are needed")
    values = {p: table[p].to_numpy(np.float64) for p in candidates}
    target = table[args.target].to_numpy(np.float64)
    if label_free:  # nothing is fitted, every labelled network is evaluated
        train, held_out = np.arange(0), np.arange(len(table))
        rule = label_free
    else:
        train, held_out = ens.split(len(table), args.train_fraction, args.seed)
        aggregations = ens.AGGREGATIONS if args.aggregation == "fit" else (args.aggregation,)
        if sizes:
            return few_shot(args, values, target, train, held_out, sizes, candidates, aggregations)
        rule = ens.fit(values, target, train, candidates=candidates, max_size=args.max_size, aggregations=aggregations)
    evaluation = pd.DataFrame({p: v[held_out] for p, v in values.items()}, index=table.index[held_out])
    evaluation["ensemble"] = ens.ensemble({p: v[held_out] for p, v in values.items()}, rule)
    evaluation[args.target] = target[held_out]
    trained = dict(zip(rule.proxies, rule.signs))
    orientation = {
        p: trained.get(p) or (-1 if train.size and ens.spearman(values[p][train], target[train]) < 0 else 1)
        for p in candidates
    }
    for name, (_, other) in compared.items():  # rules fixed elsewhere: oriented already, nothing fitted here
        evaluation[name] = ens.ensemble({p: table[p].to_numpy(np.float64)[held_out] for p in other.proxies}, other)
    top = ens.top_one_percent(held_out.size)
    rows = {}
    for column in ["ensemble", *compared, *candidates]:
        oriented = evaluation[[column, args.target]].assign(**{column: orientation.get(column, 1) * evaluation[column]})
        rows[column] = assess(oriented, column, args.target, top=top, bootstrap=args.bootstrap, seed=args.seed)
    subsets = {}
    dead = nb201.dead_operation_mask(table["arch"].iloc[held_out]) if "arch" in table.columns else None
    if dead is not None:
        for name, mask in (("without dead operations", ~dead), ("with dead operations", dead)):
            if mask.sum() >= 3:
                subsets[name] = (
                    int(mask.sum()),
                    ens.spearman(evaluation["ensemble"].to_numpy()[mask], target[held_out][mask]),
                )
    result = {
        "rule": rule.to_json(),
        "target": args.target,
        "networks": {"train": int(train.size), "evaluation": int(held_out.size)},
        "split_seed": args.seed,
        "evaluation": {name: e.to_dict() for name, e in rows.items()},
        "top_1_percent": top,
        "ensemble_by_subset": {name: {"networks": n, "spearman": rho} for name, (n, rho) in subsets.items()},
        "sources": [Path(p).name for p in args.results],
    }
    if compared:
        result["compared"] = {
            name: {"source": path, "rule": other.to_json()} for name, (path, other) in compared.items()
        }
    result.update(_provenance(args, scored, rule))
    return _emit(args, "ensemble", result, markdown(result, rows, subsets, top=top, notes=args.notes))


def _label_free_rule(
    args: argparse.Namespace, scored: pd.DataFrame, fixed: list[str], transferred: EnsembleRule | None
) -> EnsembleRule:
    """The --rule rule, or the --fixed one, oriented larger-is-better or by consensus over every scored network."""
    from gradsign_rs.proxies import ensemble as ens

    if transferred:
        return transferred
    aggregation = "log" if args.aggregation == "fit" else args.aggregation
    values = {p: scored[p].to_numpy(np.float64) for p in fixed}
    signs = ens.consensus_signs(values, fixed) if args.orientation == "consensus" else (1,) * len(fixed)
    return ens.EnsembleRule(tuple(fixed), signs, None, aggregation)


def _provenance(args: argparse.Namespace, scored: pd.DataFrame, rule: EnsembleRule) -> dict:
    """Where a label-free rule came from, for the report: the --rule file, or what the consensus orientation read."""
    from gradsign_rs.proxies import ensemble as ens

    found: dict[str, object] = {}
    if args.rule:
        found["rule_source"] = args.rule
    if args.orientation == "consensus":
        found["orientation"] = "consensus"
        values = {p: scored[p].to_numpy(np.float64) for p in rule.proxies}
        pairwise = ens.pairwise_spearman(values, rule.proxies)
        found["pairwise_spearman"] = {
            p: {q: float(pairwise[i, j]) for j, q in enumerate(rule.proxies)} for i, p in enumerate(rule.proxies)
        }
    return found


def _ranked(scored: pd.DataFrame, rule: EnsembleRule) -> pd.DataFrame:
    """Every scored network's rule value and rank (1: predicted best; ties share the better rank; NaN last)."""
    from gradsign_rs.proxies import ensemble as ens

    value = ens.ensemble({p: scored[p].to_numpy(np.float64) for p in rule.proxies}, rule)
    frame = scored[[c for c in ("arch",) if c in scored.columns]].assign(ensemble=value)
    frame["rank"] = frame["ensemble"].rank(ascending=False, method="min", na_option="bottom").astype(np.int64)
    return frame.sort_values(["rank", "ensemble"], kind="stable")


def _write_scores(path: Path, ranked: pd.DataFrame, on: str) -> None:
    """--scores: the ranking as CSV, written whole beside its final name first, so a kill leaves no half file."""
    if path.is_dir():
        raise GradSignError(f"--scores {path}: is a folder; name a CSV file")
    if not path.parent.is_dir():
        raise GradSignError(f"--scores {path}: folder {path.parent} does not exist")
    temporary = path.with_name(path.name + ".tmp")
    try:
        ranked.rename_axis(on).to_csv(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise GradSignError(f"--scores {path}: cannot write it ({exc.strerror or exc})") from None


def _ranking(
    args: argparse.Namespace, scored: pd.DataFrame, ranked: pd.DataFrame, rule: EnsembleRule
) -> tuple[dict, str]:
    """--truth none: the rule and its best networks (`ranked`, from `_ranked`), no statistic (there is nothing to
    compare with)."""
    best = ranked.head(RANKING_SHOWN)
    result = {
        "rule": rule.to_json(),
        "networks": {"scored": len(ranked), "undefined": int(ranked["ensemble"].isna().sum())},
        "best": [{args.on: _plain(key), **{c: _plain(v) for c, v in row.items()}} for key, row in best.iterrows()],
        "sources": [Path(p).name for p in args.results],
        **_provenance(args, scored, rule),
    }
    if args.scores:
        result["scores"] = args.scores
    terms = _rule_text(result["rule"])
    lines = [
        "# Ranking by a label-free rule (no accuracy read)",
        "",
        args.notes,
        "",
        f"Rule: ({terms}) / {sum(result['rule']['weights']):g} (aggregation: {rule.aggregation}) over "
        f"{len(ranked)} networks ({result['networks']['undefined']} with no defined value, ranked last).",
        "",
        f"| rank | {args.on} | {' | '.join(c for c in best.columns if c != 'rank')} |",
        "|---:|---|" + "---|" * (len(best.columns) - 1),
    ]
    for key, row in best.iterrows():
        # An NB101 arch spells its ops with |, which would split a Markdown cell.
        cells = [
            f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]).replace("|", "\\|")
            for c in best.columns
            if c != "rank"
        ]
        lines.append(f"| {row['rank']} | {key} | {' | '.join(cells)} |")
    lines += ["", f"Sources: {', '.join(result['sources'])}.", ""]
    return result, "\n".join(lines)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value JSON can hold (NaN as null)."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and np.isnan(value) else value


def _read_rule(args: argparse.Namespace) -> EnsembleRule:
    """The rule of --rule's report, refused with the flag and file named when it is not one."""
    if args.fixed:
        raise GradSignError("--fixed and --rule each give the whole rule; choose one")
    if args.aggregation != "fit":
        raise GradSignError(f"--rule {args.rule}: the rule carries its own aggregation; drop --aggregation")
    return _rule_file("--rule", args.rule)


def _rule_file(flag: str, name: str) -> EnsembleRule:
    """The rule of an earlier report's ensemble.json (or a bare rule), errors naming `flag` and the file."""
    from gradsign_rs.proxies import ensemble as ens

    path = Path(name)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise GradSignError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise GradSignError(f"{flag} {path}: not JSON ({exc})") from None
    return ens.EnsembleRule.from_json(data, f"{flag} {path}")


def _compared(paths: list[str], available: list[str]) -> dict[str, tuple[str, EnsembleRule]]:
    """The --compare rules by row name: 'rule' and the report's folder, numbered where folders repeat."""
    compared: dict[str, tuple[str, EnsembleRule]] = {}
    for path in paths:
        other = _rule_file("--compare", path)
        missing = sorted(set(other.proxies) - set(available))
        if missing:
            raise GradSignError(f"--compare {path}: the rule needs proxies {missing}, not in the joined tables")
        name = base = f"rule {Path(path).resolve().parent.name}"
        number = 2
        while name in compared:
            name, number = f"{base} ({number})", number + 1
        compared[name] = (path, other)
    return compared


def assess(frame: pd.DataFrame, score: str, target: str, *, top: int, bootstrap: int, seed: int) -> Evaluation:
    """`report.evaluate` of `score` against `target` over the rows where neither is NaN (±inf stay: they rank as the
    extremes), with precision at `top` (the top 1% of the evaluation networks) always among its precisions."""
    from gradsign_rs import stats
    from gradsign_rs.report import evaluate

    finite = frame[[score, target]].dropna()
    result = evaluate(finite, target, score=score, bootstrap=bootstrap, seed=seed)
    result.precision_at_k[top] = stats.precision_at_k(finite[score], finite[target], top)
    return result


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GradSignError(f"--train-size {text!r}: expected comma-separated integers, e.g. 50,100,500") from None
    if not sizes:
        raise GradSignError("--train-size names no size")
    return sizes


def few_shot(
    args: argparse.Namespace,
    values: dict[str, np.ndarray],
    target: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    sizes: list[int],
    candidates: list[str],
    aggregations: tuple[str, ...],
) -> int:
    """The few-shot fits (`ensemble.few_shot`) and their report."""
    from gradsign_rs.proxies import ensemble as ens

    results = ens.few_shot(
        values,
        target,
        train,
        held_out,
        sizes,
        splits=args.splits,
        candidates=candidates,
        max_size=args.max_size,
        aggregations=aggregations,
    )
    top = ens.top_one_percent(held_out.size)
    result = {
        "target": args.target,
        "networks": {"training_split": int(train.size), "evaluation": int(held_out.size)},
        "split_seed": args.seed,
        "top_1_percent": top,
        "candidates": candidates,
        "sizes": results,
        "sources": [Path(p).name for p in args.results],
    }
    return _emit(args, "few_shot", result, few_shot_markdown(result, notes=args.notes))


def _emit(args: argparse.Namespace, name: str, result: dict, text: str) -> int:
    """Write `name`.md and `name`.json to --report (when given) and print the text, or the JSON with --json."""
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text(text)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else text, end="" if not args.json else "\n")
    return 0


def _rule_text(rule: dict) -> str:
    """A rule in one line: weight·[log ]rank(±proxy) terms joined by +."""
    log = "log " if rule["aggregation"] == "log" else ""
    return " + ".join(
        f"{'' if w == 1 else f'{w:g}·'}{log}rank({'' if s > 0 else '-'}{p})"
        for p, s, w in zip(rule["proxies"], rule["signs"], rule["weights"])
    )


def few_shot_markdown(result: dict, *, notes: str) -> str:
    from gradsign_rs.proxies.ensemble import FEW_SHOT_STATISTICS

    top = result["top_1_percent"]
    split = result["networks"]["training_split"]
    lines = [
        f"# Few-shot rank ensemble vs {result['target']}",
        "",
        notes,
        "",
        f"Each fit chooses its rule (proxies among {', '.join(result['candidates'])}, orientation, weights, "
        f"aggregation) by forward selection on N networks drawn from a training split of {split} (split seed "
        f"{result['split_seed']}; draw k takes the first N of permutation k of the split, so a draw's smaller "
        f"training sets are part of its larger ones), and is evaluated on the same "
        f"{result['networks']['evaluation']} held-out networks, which no fit sees. Mean ± standard deviation over "
        "the draws [min, max].",
        "",
        f"| training networks | draws | Spearman ρ | Kendall τ | precision@{top} (top 1%) |",
        "|---:|---:|---|---|---|",
    ]
    chosen = []
    for size, entry in result["sizes"].items():
        cells = []
        for key in FEW_SHOT_STATISTICS:
            m = entry["summary"][key]
            spread = f" ± {m['std']:.4f} [{m['min']:.4f}, {m['max']:.4f}]" if entry["draws"] > 1 else ""
            cells.append(f"{m['mean']:.4f}{spread}")
        whole = " (whole split)" if int(size) == split else ""
        lines.append(f"| {size}{whole} | {entry['draws']} | {' | '.join(cells)} |")
        rules: dict[str, int] = {}
        for f in entry["fits"]:
            rules[_rule_text(f["rule"])] = rules.get(_rule_text(f["rule"]), 0) + 1
        chosen.append(
            f"- {size}: " + "; ".join(f"{text} ({n})" for text, n in sorted(rules.items(), key=lambda kv: -kv[1]))
        )
    lines += ["", "Rules chosen (how many draws chose each):", "", *chosen]
    lines += ["", f"Sources: {', '.join(result['sources'])}.", ""]
    return "\n".join(lines)


def markdown(result: dict, rows: dict, subsets: dict, *, top: int, notes: str) -> str:
    rule = result["rule"]
    terms = _rule_text(rule)
    fitted = result["networks"]["train"] > 0
    if fitted:
        origin = f"fitted on {result['networks']['train']} networks, split seed {result['split_seed']}"
    elif result.get("orientation") == "consensus":
        origin = (
            "fixed without labels, oriented by consensus (the signs under which the proxies' pairwise Spearman "
            "correlations sum highest, the majority larger-is-better), nothing fitted"
        )
    elif "rule_source" in result:
        origin = f"read from {result['rule_source']} and applied unchanged, nothing fitted on these networks"
    else:
        origin = "fixed without labels, every proxy larger-is-better, nothing fitted"
    scope = "the other" if fitted else "all"
    lines = [
        f"# Rank ensemble of proxies vs {result['target']}",
        "",
        notes,
        "",
        f"Rule ({origin}): ({terms}) / {sum(rule['weights']):g} (aggregation: {rule['aggregation']}; rank(p) is p's "
        "rank among the networks scored, divided by their count).",
        f"Everything below is on {scope} {result['networks']['evaluation']} networks.",
        "",
        f"| predictor | networks | Spearman ρ (95% CI) | Kendall τ | precision@{top} (top 1%) |",
        "|---|---:|---|---:|---:|",
    ]
    for name, e in sorted(rows.items(), key=lambda kv: (kv[0] != "ensemble", -kv[1].spearman)):
        lines.append(
            f"| {name} | {e.n} | {e.spearman:.4f} ({e.spearman_ci[0]:.4f}, {e.spearman_ci[1]:.4f}) | "
            f"{e.kendall:.4f} | {e.precision_at_k[top]:.2f} |"
        )
    if "pairwise_spearman" in result:
        names = list(result["pairwise_spearman"])
        lines += ["", "Pairwise Spearman of the proxies, which the consensus orientation reads (no accuracy):", ""]
        lines += [f"| | {' | '.join(names)} |", "|---|" + "---:|" * len(names)]
        lines += [
            f"| {p} | " + " | ".join(f"{result['pairwise_spearman'][p][q]:.2f}" for q in names) + " |" for p in names
        ]
    if subsets:
        lines += ["", "Ensemble by subset of the evaluation networks:", ""]
        lines += [f"- {name}: {n} networks, Spearman {rho:.4f}" for name, (n, rho) in subsets.items()]
    lines += [
        "",
        "Proxies oriented as fitted (a proxy that predicts lower-is-better is negated). A single proxy is "
        "evaluated on the networks where it is not NaN (its `networks` count); the ensemble on all of them.",
        f"Sources: {', '.join(result['sources'])}.",
        "",
    ]
    return "\n".join(lines)
