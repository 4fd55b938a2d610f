"""Write the example CSVs in data/raw/ (seeded, so the files never change).

    python scripts/make_example_data.py

houses.csv: a regression target (price, in thousands) from four features on very different
scales. admissions.csv: a 0/1 target (admitted) from three features, with overlap between
the classes, so no line separates them perfectly.

circles_{train,test}.csv and blobs_{train,test}.csv: the course's chapter 02 data, as its
notebook makes and splits it (`make_circles`, `make_blobs`, then `train_test_split(test_size=0.2,
random_state=42)` of the float32 tensors), so `data.test_path` gives the course's split.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_blobs, make_circles
from sklearn.model_selection import train_test_split

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"


def houses(rows: int = 1000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 250, rows)
    rooms = rng.integers(1, 8, rows)
    age = rng.uniform(0, 100, rows)
    distance = rng.uniform(0.5, 40, rows)
    price = 50 + 2.5 * area + 15 * rooms - 0.8 * age - 4 * distance + rng.normal(0, 25, rows)
    return pd.DataFrame(
        {
            "area_m2": area.round(1),
            "rooms": rooms,
            "age_years": age.round(1),
            "distance_km": distance.round(2),
            "price": price.round(1),
        }
    )


def admissions(rows: int = 600, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    exam_1 = rng.normal(65, 12, rows)
    exam_2 = rng.normal(60, 15, rows)
    hours = rng.uniform(0, 40, rows)
    logit = -21 + 0.18 * exam_1 + 0.12 * exam_2 + 0.08 * hours
    admitted = (rng.uniform(0, 1, rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "exam_1": exam_1.round(1),
            "exam_2": exam_2.round(1),
            "hours_studied": hours.round(1),
            "admitted": admitted,
        }
    )


def course_split(X: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, pd.DataFrame]:
    """The course's split of its float32 features, as train and test tables."""
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.2, random_state=42
    )
    return {
        side: pd.DataFrame({**dict(zip(names, features.T, strict=True)), "label": labels})
        for side, features, labels in (("train", X_train, y_train), ("test", X_test, y_test))
    }


def circles() -> dict[str, pd.DataFrame]:
    X, y = make_circles(1000, noise=0.03, random_state=42)
    return course_split(X, y, ["X1", "X2"])  # the names of the course's DataFrame


def blobs() -> dict[str, pd.DataFrame]:
    X, y = make_blobs(n_samples=1000, n_features=2, centers=4, cluster_std=1.5, random_state=42)
    return course_split(X, y, ["x1", "x2"])


if __name__ == "__main__":
    RAW.mkdir(parents=True, exist_ok=True)
    houses().to_csv(RAW / "houses.csv", index=False)
    admissions().to_csv(RAW / "admissions.csv", index=False)
    for name, tables in (("circles", circles()), ("blobs", blobs())):
        for side, table in tables.items():
            # Nine significant digits give every float32 back exactly.
            table.to_csv(RAW / f"{name}_{side}.csv", index=False, float_format="%.9g")
