"""Read the MovieLens layouts into event, item and user frames.

Supported layouts, detected from the files present:

* RecBole atomic files: ``<name>.inter``, ``<name>.item``, ``<name>.user`` (tab-separated,
  typed headers such as ``user_id:token``);
* GroupLens ml-100k: ``u.data``, ``u.item``, ``u.user`` (and ``u.genre``);
* GroupLens ml-latest(-small), ml-20m, ml-25m: ``ratings.csv``, ``movies.csv``, ``tags.csv``.

Ratings become ``rating`` events whose value is the star rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attune.errors import ValidationError

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class MovieLensData:
    layout: str
    events: pd.DataFrame  # user_id, item_id, type, value, timestamp
    items: pd.DataFrame  # item_id, title, categories ('|'-joined), tags, year
    users: pd.DataFrame  # user_id and trait columns


def read_movielens(folder: Path) -> MovieLensData:
    if not folder.is_dir():
        raise ValidationError(f"{folder}: not a folder")
    inter = sorted(folder.glob("*.inter"))
    if inter:
        return _recbole(inter[0])
    if (folder / "u.data").is_file():
        return _grouplens_100k(folder)
    if (folder / "ratings.csv").is_file():
        return _grouplens_csv(folder)
    raise ValidationError(
        f"{folder}: no MovieLens files found (looked for *.inter, u.data, ratings.csv)"
    )


def _read_atomic(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    return frame


def _rating_events(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": frame["user_id"].astype(str),
            "item_id": frame["item_id"].astype(str),
            "type": "rating",
            "value": frame["rating"].astype(str),
            "timestamp": frame["timestamp"].astype(str),
        }
    )


def _recbole(inter_path: Path) -> MovieLensData:
    events = _rating_events(_read_atomic(inter_path))
    stem = inter_path.with_suffix("")
    items = pd.DataFrame({"item_id": sorted(set(events["item_id"]))})
    item_path, user_path = stem.with_suffix(".item"), stem.with_suffix(".user")
    if item_path.is_file():
        raw = _read_atomic(item_path)
        genres = raw.get("class", pd.Series([""] * len(raw)))
        items = pd.DataFrame(
            {
                "item_id": raw["item_id"],
                "title": raw.get("movie_title", ""),
                "categories": genres.str.split().str.join("|"),
                "year": raw.get("release_year", ""),
            }
        )
    users = pd.DataFrame({"user_id": sorted(set(events["user_id"]))})
    if user_path.is_file():
        users = _read_atomic(user_path)
    return MovieLensData("recbole", events, items, users)


def _grouplens_100k(folder: Path) -> MovieLensData:
    data = pd.read_csv(
        folder / "u.data",
        sep="\t",
        header=None,
        dtype=str,
        names=["user_id", "item_id", "rating", "timestamp"],
    )
    events = _rating_events(data)
    genres = ML100K_GENRES
    if (folder / "u.genre").is_file():
        listed = pd.read_csv(folder / "u.genre", sep="|", header=None, dtype=str).dropna()
        genres = listed[0].tolist()
    items = pd.DataFrame({"item_id": sorted(set(events["item_id"]))})
    if (folder / "u.item").is_file():
        raw = pd.read_csv(
            folder / "u.item",
            sep="|",
            header=None,
            dtype=str,
            encoding="latin-1",
            keep_default_na=False,
        )
        flags = raw.iloc[:, 5 : 5 + len(genres)]
        categories = flags.apply(
            lambda row: "|".join(g for g, f in zip(genres, row, strict=False) if f == "1"), axis=1
        )
        titles = raw[1].astype(str)
        items = pd.DataFrame(
            {
                "item_id": raw[0],
                "title": titles.str.replace(YEAR, "", regex=True).str.strip(),
                "categories": categories,
                "year": titles.str.extract(YEAR, expand=False).fillna(""),
            }
        )
    users = pd.DataFrame({"user_id": sorted(set(events["user_id"]))})
    if (folder / "u.user").is_file():
        users = pd.read_csv(
            folder / "u.user",
            sep="|",
            header=None,
            dtype=str,
            names=["user_id", "age", "gender", "occupation", "zip_code"],
        )
    return MovieLensData("grouplens-100k", events, items, users)


def _grouplens_csv(folder: Path) -> MovieLensData:
    ratings = pd.read_csv(folder / "ratings.csv", dtype=str, keep_default_na=False)
    events = _rating_events(ratings.rename(columns={"userId": "user_id", "movieId": "item_id"}))
    items = pd.DataFrame({"item_id": sorted(set(events["item_id"]))})
    if (folder / "movies.csv").is_file():
        movies = pd.read_csv(folder / "movies.csv", dtype=str, keep_default_na=False)
        titles = movies["title"].str.strip()
        items = pd.DataFrame(
            {
                "item_id": movies["movieId"],
                "title": titles.str.replace(YEAR, "", regex=True).str.strip(),
                "categories": movies["genres"].replace("(no genres listed)", ""),
                "year": titles.str.extract(YEAR, expand=False).fillna(""),
            }
        )
    if (folder / "tags.csv").is_file():
        tags = pd.read_csv(folder / "tags.csv", dtype=str, keep_default_na=False)
        tags["tag"] = tags["tag"].str.strip().str.replace("|", "/", regex=False)
        tags = tags[tags["tag"] != ""]
        tags["key"] = tags["tag"].str.lower()
        unique = tags.drop_duplicates(["movieId", "key"])
        joined = unique.groupby("movieId")["tag"].agg(lambda s: "|".join(s.head(50)))
        items["tags"] = items["item_id"].map(joined).fillna("")
    users = pd.DataFrame({"user_id": sorted(set(events["user_id"]), key=_natural)})
    return MovieLensData("grouplens-csv", events, items, users)


def _natural(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)
