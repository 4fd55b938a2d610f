"""Write the two example CSVs in data/raw/ (seeded, so the files never change).

    python scripts/make_example_data.py

houses.csv: a regression target (price, in thousands) from four features on very different
scales. admissions.csv: a 0/1 target (admitted) from three features, with overlap between
the classes, so no line separates them perfectly.
"""

from pathlib import Path

import numpy as np
import pandas as pd

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


if __name__ == "__main__":
    RAW.mkdir(parents=True, exist_ok=True)
    houses().to_csv(RAW / "houses.csv", index=False)
    admissions().to_csv(RAW / "admissions.csv", index=False)
