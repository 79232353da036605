"""Logic of the Explore page: the embedding map of the visible photos (points, colours, the clicked photo) and the
labels reviewers collected so far. The map itself is computed by the pipeline (`python -m pipeline project`);
this module only reads it, through db/explore.py, whose reads draw visible photos only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from dashboard import context
from db import explore as store
from db.database import Database
from db.shared import LeasedDatabase
from pipeline.object_text import PRESENT
from pipeline.perception import PERCEIVER_ID

MAX_POINTS = 20_000  # drawn at most: WebGL draws more, but the page's JSON and the browser's memory grow with each
MAX_GROUPS = 12  # legend entries; smaller groups are drawn together as "other"
OTHER = "(other)"
COLOUR_BY = {"dataset": "Dataset", "cluster": "Cluster", "verdict": "Reviewers' verdict", "object": "COCO object",
             "detected": "Detected object"}
LABEL_GROUPS = {"user_name": "reviewer", "verdict": "verdict", "query": "query"}
TOP_GROUPS = 20  # reviewers / queries listed, the most labelled first
VERDICT_ORDER = ("relevant", "not_relevant", "offensive")
VERDICT_COLOURS = {"relevant": "#2ca02c", "not_relevant": "#9e9e9e", "offensive": "#d62728"}
PALETTE = plotly.colors.qualitative.Dark24  # 24 distinct colours: each legend entry its own
FADED = {OTHER: "#d0d0d0", store.NO_LABEL: "#a0a0a0"}  # photos without a group of their own stay in the background


@st.cache_data(max_entries=8, show_spinner="Reading the map…")
def map_points(db_path: str, encoder_id: str, limit: int, version: tuple) -> tuple[int, pd.DataFrame]:
    """The visible photos on ``encoder_id``'s map (db.explore.visible_points), cached per map and visibility
    ``version``: a decision, an ingest or a new map changes the key, so a withdrawn photo is gone on the next run."""
    return store.visible_points(LeasedDatabase(context.shared_database(db_path)), encoder_id, limit)


def cache_version(db: Database, info: store.MapInfo) -> tuple:
    """What :func:`map_points` depends on: the stored map and which photos are visible."""
    return info.version(), info.created, store.visibility_version(db)


def stale_notice(info: store.MapInfo, current: tuple[int, datetime | None]) -> str | None:
    """Why the map no longer matches the encoder's vectors (db.embeddings.vector_set_version), or None."""
    if info.version() == current:
        return None
    count, _ = current
    return (f"This map was computed from {info.vectors:,} vectors on {info.created:%Y-%m-%d %H:%M}; the encoder has "
            f"{count:,} now (embed ran since). Run `python -m pipeline project --encoder {info.encoder_id}` to "
            "update it; new photos are missing until then.")


def groups(db: Database, points: pd.DataFrame, by: str) -> pd.Series:
    """The colour group of each point: its dataset, cluster, latest reviewer verdict, main COCO object from the
    dataset's annotations, or main object the perceive stage detected."""
    if by == "dataset":
        return points["dataset"].astype(str)
    if by == "cluster":
        return "cluster " + points["cluster"].astype(str)
    ids = points["image_id"].tolist()
    if by == "verdict":
        found = store.verdicts_of(db, ids)
    elif by == "object":
        found = store.objects_of(db, ids)
    elif by == "detected":
        found = store.detected_of(db, ids, PERCEIVER_ID, PRESENT)
    else:
        raise ValueError(f"cannot colour by {by!r}; choose from {', '.join(COLOUR_BY)}")
    return points["image_id"].map(found).fillna(store.NO_LABEL)


def figure(points: pd.DataFrame, colour: pd.Series) -> go.Figure:
    """One WebGL trace per colour group (the largest MAX_GROUPS, the rest as "other"), so the legend toggles them;
    each point carries its photo id for the click."""
    counts = colour.value_counts()
    kept = set(counts.index[:MAX_GROUPS]) if len(counts) > MAX_GROUPS + 1 else set(counts.index)
    shown = colour.where(colour.isin(kept), OTHER)
    fig = go.Figure()
    names = sorted(shown.unique(), key=lambda g: (g in FADED, -int((shown == g).sum()), g))
    for number, name in enumerate(names):
        part = points[shown == name]
        colour = FADED.get(name) or VERDICT_COLOURS.get(name) or PALETTE[number % len(PALETTE)]
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=f"{name} ({len(part):,})",
            customdata=part["image_id"], hovertemplate="%{customdata}<extra></extra>",
            marker={"size": 6 if len(points) < 5_000 else 3, "opacity": 0.8, "color": colour},
            selected={"marker": {"size": 12, "color": "black"}}, unselected={"marker": {"opacity": 0.5}}))
    fig.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0}, showlegend=True,
                      legend={"itemsizing": "constant"},
                      xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
                      clickmode="event+select", dragmode="pan")
    return fig


def picked_id(event: Mapping | None) -> str | None:
    """The photo id of the point clicked on the map (st.plotly_chart's selection state), or None."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    if not points:
        return None
    data = points[0].get("customdata")
    if isinstance(data, list):
        data = data[0] if data else None
    return data if isinstance(data, str) else None


def labels_table(counts: pd.DataFrame, name: str) -> pd.DataFrame:
    """db.explore.labels_by rows -> one row per group, a column per verdict and the total, the largest first."""
    table = counts.pivot_table(index="key", columns="verdict", values="labels", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=[v for v in VERDICT_ORDER if v in table.columns]
                          + [v for v in table.columns if v not in VERDICT_ORDER])
    table["total"] = table.sum(axis=1)
    table = table.sort_values(["total"], ascending=False, kind="stable").reset_index()
    table.columns.name = None
    return table.rename(columns={"key": name}).astype({c: "int64" for c in table.columns if c != "key"})


def labels_figure(table: pd.DataFrame, name: str) -> go.Figure:
    """Stacked horizontal bars: labels per group, split by verdict."""
    fig = go.Figure()
    for verdict in [c for c in table.columns if c not in (name, "total")]:
        fig.add_trace(go.Bar(y=table[name], x=table[verdict], name=verdict, orientation="h",
                             marker={"color": VERDICT_COLOURS.get(verdict)}))
    fig.update_layout(barmode="stack", height=min(120 + 28 * len(table), 640), margin={"l": 0, "r": 0, "t": 10, "b": 0},
                      yaxis={"autorange": "reversed", "title": None}, xaxis={"title": "labels"})
    return fig
