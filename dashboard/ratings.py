"""Data, agreement statistics and figures of the Ratings EDA page, kept apart from Streamlit so they can be
unit-tested without it.

Inter-expert agreement is Krippendorff's alpha with the **ordinal** metric as the headline: the expert scores
1..4 are ordered grades ("does not describe" .. "describes the image") whose steps are not known to be equal, so
the interval metric is shown beside it, with the nominal metric and Fleiss' kappa (which ignores the order) for
comparison. Both statistics are computed here with numpy from the distinct score triples and how many pairs got
each (db/eda.py expert_score_patterns), which is exact: alpha and kappa depend on the units only through their
value counts, so a triple seen k times is one unit of weight k. Both treat the experts as interchangeable, which
matters here: the Flickr8k file stores each pair's three scores in ascending order, so its columns are the lowest,
middle and highest score rather than three identified experts (Agreement.columns_sorted tells the page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from db import eda, labels
from db.database import Database

EXPERTS = ("expert_1", "expert_2", "expert_3")
SCORES = (1, 2, 3, 4)
ALL_EXPERTS = "all experts"
# Every value the mean of three 1..4 scores can take: the steps of the score-range slider.
SCORE_MEANS = tuple(total / 3 for total in range(3, 13))
METRICS = ("ordinal", "interval", "nominal")
GALLERY_SIZE = 8  # thumbnails shown in a drill-down; the table lists the pairs (eda.PAIRS_LIMIT at most)


def format_mean(value: float) -> str:
    return f"{value:.2f}"


def format_number(value: float | None, digits: int = 3) -> str:
    """Headline numbers as st.metric shows them; "n/a" where there was nothing to average."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def share_bin_label(lower: float) -> str:
    """A histogram bin by its range, e.g. "0.3–0.4"; the last bin holds 1.0 itself too."""
    return f"{lower:.1f}–{lower + 1 / eda.SHARE_BINS:.1f}"


# ----------------------------------------------------------------------------------------------- agreement
def _squared_distances(values: np.ndarray, totals: np.ndarray, metric: str) -> np.ndarray:
    """Krippendorff's difference function delta² between every two values. The ordinal one depends on how often
    each value was used (``totals``, the margins of the coincidence matrix): the distance between two ranks is the
    number of values used between them, half counting the two ends."""
    if metric == "nominal":
        return 1.0 - np.eye(len(values))
    if metric == "interval":
        return np.subtract.outer(values, values) ** 2
    if metric == "ordinal":
        cumulative = np.cumsum(totals)
        rank = np.arange(len(values))
        low, high = np.minimum.outer(rank, rank), np.maximum.outer(rank, rank)
        between = cumulative[high] - cumulative[low] + totals[low]
        return (between - (totals[low] + totals[high]) / 2) ** 2
    raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def krippendorff_alpha(ratings: np.ndarray, metric: str = "ordinal", weights: np.ndarray | None = None) -> float:
    """Krippendorff's alpha of ``ratings`` (units x raters, NaN where a rater did not rate the unit), each unit
    counted ``weights`` times (default once). Units with fewer than two ratings cannot be compared and are left
    out, as Krippendorff prescribes. NaN when alpha is undefined: no pairable unit, or a single value used
    throughout (no variation, so no expected disagreement)."""
    ratings = np.asarray(ratings, dtype=float)
    unit_weights = np.ones(len(ratings)) if weights is None else np.asarray(weights, dtype=float)
    values = np.unique(ratings[~np.isnan(ratings)])
    counts = (ratings[:, :, None] == values[None, None, :]).sum(axis=1)  # units x values
    per_unit = counts.sum(axis=1)
    pairable = per_unit >= 2
    counts, per_unit, unit_weights = counts[pairable], per_unit[pairable], unit_weights[pairable]
    if not len(counts):
        return float("nan")
    scaled = counts * (unit_weights / (per_unit - 1))[:, None]
    coincidences = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    totals = coincidences.sum(axis=1)
    distances = _squared_distances(values, totals, metric)
    expected = (np.outer(totals, totals) * distances).sum()
    if expected == 0:
        return float("nan")
    return float(1 - (totals.sum() - 1) * (coincidences * distances).sum() / expected)


def fleiss_kappa(category_counts: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Fleiss' kappa of ``category_counts`` (units x categories: how many raters put the unit in each category;
    every unit rated by the same number of raters, at least two), each unit counted ``weights`` times. NaN when
    every rating fell in one category."""
    counts = np.asarray(category_counts, dtype=float)
    unit_weights = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=float)
    raters = counts.sum(axis=1)
    if not len(counts) or np.any(raters != raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (two or more) of raters for every unit")
    rater_count = raters[0]
    category_shares = unit_weights @ counts / (unit_weights.sum() * rater_count)
    unit_agreement = ((counts ** 2).sum(axis=1) - rater_count) / (rater_count * (rater_count - 1))
    observed = unit_weights @ unit_agreement / unit_weights.sum()
    expected = (category_shares ** 2).sum()
    if expected == 1:
        return float("nan")
    return float((observed - expected) / (1 - expected))


@dataclass(frozen=True)
class Agreement:
    """Agreement of the three experts over the filtered pairs."""

    pairs: int
    alpha: dict[str, float]  # metric -> Krippendorff's alpha
    fleiss_kappa: float
    all_three_agree: float  # share of pairs where the three scores are equal
    two_agree: float  # share of pairs where at least two of the three scores are equal
    # True when every pair's scores are stored in ascending order (expert_1 <= expert_2 <= expert_3), as in the
    # Flickr8k file: the columns are then the lowest, middle and highest score, not three identified experts.
    columns_sorted: bool


def agreement(patterns: pd.DataFrame) -> Agreement | None:
    """Agreement statistics from (expert_1, expert_2, expert_3, pairs) rows; None when no pair has expert scores."""
    if patterns.empty:
        return None
    ratings = patterns[list(EXPERTS)].to_numpy(dtype=float)
    weights = patterns["pairs"].to_numpy(dtype=float)
    category_counts = np.stack([(ratings == score).sum(axis=1) for score in SCORES], axis=1)
    total = weights.sum()

    largest_group = category_counts.max(axis=1)
    return Agreement(
        pairs=int(total),
        alpha={metric: krippendorff_alpha(ratings, metric, weights) for metric in METRICS},
        fleiss_kappa=fleiss_kappa(category_counts, weights),
        all_three_agree=float(weights[largest_group == len(EXPERTS)].sum() / total),
        two_agree=float(weights[largest_group >= 2].sum() / total),
        columns_sorted=bool(np.all(np.diff(ratings, axis=1) >= 0)),
    )


def agreement_table(result: Agreement) -> pd.DataFrame:
    """The statistics as rows (statistic, value, what it means) for st.dataframe."""
    rows = [
        ("Krippendorff's α, ordinal", result.alpha["ordinal"], "headline: scores as ordered grades"),
        ("Krippendorff's α, interval", result.alpha["interval"], "scores as equally spaced numbers"),
        ("Krippendorff's α, nominal", result.alpha["nominal"], "scores as unordered categories"),
        ("Fleiss' κ", result.fleiss_kappa, "unordered categories; chance from the pooled score shares"),
        ("All three experts agree", result.all_three_agree, "share of pairs with three equal scores"),
        ("At least two agree", result.two_agree, "share of pairs with two or three equal scores"),
    ]
    return pd.DataFrame(rows, columns=["statistic", "value", "reads as"]).round({"value": 3})


# -------------------------------------------------------------------------------------------------- snapshot
@dataclass(frozen=True)
class Snapshot:
    """Everything the page shows above the drill-downs for one filter, read in one block."""

    summary: dict[str, float | int | None]  # eda.summary
    expert_scores: pd.DataFrame  # eda.expert_score_counts
    agreement: Agreement | None
    crowd_shares: pd.DataFrame  # eda.crowd_share_counts
    expert_vs_crowd: pd.DataFrame  # eda.expert_vs_crowd
    targets: pd.DataFrame  # eda.target_counts
    verdicts: pd.DataFrame  # labels.verdict_counts of the filtered dataset


def load_snapshot(db: Database, where: eda.PairFilter) -> Snapshot:
    """Every read of the page but the drill-downs and the labels list, so the shared database is held once and
    briefly. Each is an aggregate read in SQL (db/eda.py): its size does not grow with the pairs."""
    return Snapshot(
        summary=eda.summary(db, where),
        expert_scores=eda.expert_score_counts(db, where),
        agreement=agreement(eda.expert_score_patterns(db, where)),
        crowd_shares=eda.crowd_share_counts(db, where),
        expert_vs_crowd=eda.expert_vs_crowd(db, where),
        targets=eda.target_counts(db, where),
        verdicts=labels.verdict_counts(db, where.dataset),
    )


def headline(summary: dict[str, float | int | None], result: Agreement | None) -> list[tuple[str, str, str]]:
    """(label, value, help) of the metrics row, formatted as shown."""
    return [
        ("Judged pairs", f"{summary['pairs']:,}", "(photo, query) pairs with an expert or a crowd judgment"),
        ("Expert-judged", f"{summary['expert_pairs']:,}", "pairs scored 1..4 by three experts"),
        ("Crowd-judged", f"{summary['crowd_pairs']:,}", "pairs with crowd yes/no votes"),
        ("Mean expert score", format_number(summary["mean_expert"]), "mean of the three experts' 1..4 scores"),
        ("Mean crowd share", format_number(summary["mean_crowd_share"]), "share of yes votes, 0..1"),
        ("Mean target", format_number(summary["mean_target"]), "aggregated relevance, 0..1 (relevance stage)"),
        ("Krippendorff's α (ordinal)", format_number(result.alpha["ordinal"] if result else None),
         "agreement of the three experts: 1 perfect, 0 chance level, below 0 systematic disagreement"),
    ]


# ---------------------------------------------------------------------------------------------------- figures
def bars(frame: pd.DataFrame, x: str, y: str, *, title: str, titles: dict[str, str] | None = None,
         color: str | None = None, order: dict[str, list] | None = None, hover: str | None = None,
         barmode: str = "group") -> go.Figure:
    """The bar chart plotly.express.bar draws (one trace per ``color`` value: those in ``order`` first, then the
    rest as they come; axis and legend titles from ``titles``), built with graph_objects: px.bar spent ~60 ms a
    chart, a quarter of this page's render at a million pairs (benchmarks/dashboard_scale.py)."""
    order, titles = order or {}, titles or {}
    present = list(pd.unique(frame[color])) if color else [None]
    first = [value for value in order.get(color, []) if value in present]
    hover_lines = ([f"{titles.get(color, color)}=%{{fullData.name}}"] if color else []) + [
        f"{titles.get(x, x)}=%{{x}}", f"{titles.get(y, y)}=%{{y}}"] + (
        [f"{titles.get(hover, hover)}=%{{customdata[0]}}"] if hover else [])
    figure = go.Figure()
    for name in first + [value for value in present if value not in first]:
        group = frame if color is None else frame[frame[color] == name]
        figure.add_bar(name=None if name is None else str(name), x=group[x], y=group[y], showlegend=bool(color),
                       customdata=group[[hover]] if hover else None,
                       hovertemplate="<br>".join(hover_lines) + "<extra></extra>")
    figure.update_layout(title=title, barmode=barmode, xaxis_title=titles.get(x, x), yaxis_title=titles.get(y, y),
                         legend_title=titles.get(color, color) if color else None)
    if x in order:
        figure.update_xaxes(categoryorder="array", categoryarray=order[x])
    return figure


def expert_score_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """(rater, score, scores, share): each expert's score distribution and the pooled one ("all experts"), as a
    share of that rater's scores so the pooled bars stay comparable with one expert's."""
    pooled = counts.groupby("score", as_index=False)["pairs"].sum().assign(expert=ALL_EXPERTS)
    frame = pd.concat([pooled, counts], ignore_index=True).rename(columns={"expert": "rater", "pairs": "scores"})
    frame["share"] = frame["scores"] / frame.groupby("rater")["scores"].transform("sum")
    return frame[["rater", "score", "scores", "share"]]


def expert_scores_figure(counts: pd.DataFrame) -> go.Figure:
    shares = expert_score_shares(counts)
    fig = bars(shares, x="score", y="share", color="rater", barmode="group", hover="scores",
               order={"rater": [ALL_EXPERTS, *EXPERTS]},
               titles={"score": "expert score (1 = does not describe, 4 = describes)", "share": "share of scores"},
               title="Expert scores, pooled and per expert")
    fig.update_xaxes(tickvals=list(SCORES))
    fig.update_yaxes(tickformat=".0%")
    return fig


def crowd_share_figure(counts: pd.DataFrame) -> go.Figure:
    data = counts.assign(bin=counts["share_bin"].map(share_bin_label))
    return bars(data, x="bin", y="pairs", hover="votes",
                titles={"bin": "share of yes votes", "pairs": "pairs"}, title="Crowd share of yes votes")


def expert_vs_crowd_figure(frame: pd.DataFrame) -> go.Figure:
    """Heatmap over pairs judged by both: expert mean (columns) against crowd share bin (rows). The colour is the
    share of the column's pairs, so the crowd's view at each expert level reads even where pairs are few; the
    numbers in the cells are pair counts."""
    grid = (frame.assign(expert=frame["expert_mean"].map(format_mean), bin=frame["share_bin"].map(share_bin_label))
            .pivot_table(index="bin", columns="expert", values="pairs", aggfunc="sum", fill_value=0)
            .reindex(index=[share_bin_label(i / eda.SHARE_BINS) for i in range(eda.SHARE_BINS)],
                     columns=[format_mean(m) for m in SCORE_MEANS], fill_value=0))
    column_shares = grid / grid.sum(axis=0).replace(0, np.nan)
    fig = go.Figure(go.Heatmap(z=column_shares.to_numpy(), x=list(grid.columns), y=list(grid.index),
                               text=grid.to_numpy(), texttemplate="%{text}", colorscale="Blues",
                               colorbar={"title": "share of column", "tickformat": ".0%"},
                               hovertemplate="expert mean %{x}<br>crowd share %{y}<br>%{text} pairs<extra></extra>"))
    fig.update_layout(title="Experts vs crowd (pairs judged by both)", xaxis_title="mean expert score",
                      yaxis_title="crowd share of yes votes")
    return fig


def target_figure(counts: pd.DataFrame) -> go.Figure:
    data = counts.assign(bin=counts["target_bin"].map(share_bin_label))
    return bars(data, x="bin", y="pairs", color="judged_by", barmode="stack",
                order={"bin": [share_bin_label(i / eda.SHARE_BINS) for i in range(eda.SHARE_BINS)],
                       "judged_by": ["experts and crowd", "experts only", "crowd only"]},
                titles={"bin": "aggregated target (relevance)", "pairs": "pairs", "judged_by": "judged by"},
                title="Aggregated target")


def labels_figure(verdicts: pd.DataFrame) -> go.Figure:
    return bars(verdicts, x="verdict", y="labels", color="dataset", barmode="stack",
                order={"verdict": list(labels.VERDICTS)}, title="Reviewers' labels by verdict")


# ------------------------------------------------------------------------------------------------ drill-down
def query_labels(queries: pd.DataFrame) -> dict[str, str]:
    """query_id -> what the query picker shows: the caption text (or its id when the source lacks it) and how
    many judged pairs it has."""
    options = {}
    for row in queries.itertuples():
        text = row.query_text if isinstance(row.query_text, str) else f"{row.query_id} (text absent)"
        options[row.query_id] = f"{text} · {row.pairs} pairs"
    return options


@dataclass(frozen=True)
class Tile:
    """One photo of a drill-down gallery: its photo (JPEG bytes) only where it is visible and the decided bytes."""

    image_id: str
    photo: bytes | None
    caption: str


def pair_caption(row: pd.Series) -> str:
    """The judgments of one pair in a few words, for a gallery tile."""
    parts = []
    if not pd.isna(row["expert_mean"]):
        parts.append(f"experts {int(row['expert_1'])}/{int(row['expert_2'])}/{int(row['expert_3'])}")
    if not pd.isna(row["crowd_share"]):
        parts.append(f"crowd {row['crowd_share']:.2f}")
    if not pd.isna(row["target"]):
        parts.append(f"target {row['target']:.2f}")
    return " · ".join(parts)


def gallery(pairs: pd.DataFrame, shown: Callable[[str], bytes | None], size: int = GALLERY_SIZE) -> list[Tile]:
    """Tiles of the first ``size`` photos of a query's pairs; ``shown`` gives a photo only where it may be shown."""
    return [Tile(row["image_id"], shown(row["image_id"]), pair_caption(row)) for _, row in pairs.head(size).iterrows()]
