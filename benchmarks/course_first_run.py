"""The course's first run in one process, written the way the course's notebook writes it.

    python benchmarks/course_first_run.py                     # the course's 50 rows
    python benchmarks/course_first_run.py --step 1e-7         # 10 million rows
    python benchmarks/course_first_run.py --step 1e-7 --end 10 --epochs 3   # 100 million

Make the data with `torch.arange`, split it 80/20, build `LinearRegressionModel`, run 100 epochs
of the L1/SGD train and test loop, save the `state_dict` and load it into a fresh model. Plain
torch and nothing of this repository: it is what the pipeline is compared against in
`benchmarks/pipeline_benchmark.py`.
"""

import argparse
from pathlib import Path

import torch
from torch import nn


class LinearRegressionModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=0.02, help="X step (0.02: 50 rows)")
    parser.add_argument("--end", type=float, default=1.0, help="X end (the course's 1)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--model-path",
        type=Path,
        default=Path("models") / "01_pytorch_workflow_model_0.pth",
        help="where to save the state_dict (the course's file name by default)",
    )
    args = parser.parse_args()

    weight, bias = 0.7, 0.3
    start, end = 0, args.end
    X = torch.arange(start, end, args.step).unsqueeze(dim=1)
    y = weight * X + bias

    train_split = int(0.8 * len(X))
    X_train, y_train = X[:train_split], y[:train_split]
    X_test, y_test = X[train_split:], y[train_split:]

    torch.manual_seed(42)
    model_0 = LinearRegressionModel()
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.SGD(params=model_0.parameters(), lr=0.01)

    for epoch in range(args.epochs):
        model_0.train()
        y_pred = model_0(X_train)
        loss = loss_fn(y_pred, y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        model_0.eval()
        with torch.inference_mode():
            test_pred = model_0(X_test)
            test_loss = loss_fn(test_pred, y_test.type(torch.float))
        if epoch % 10 == 0:
            print(f"Epoch: {epoch} | MAE Train Loss: {loss} | MAE Test Loss: {test_loss}")

    args.model_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj=model_0.state_dict(), f=args.model_path)

    loaded_model_0 = LinearRegressionModel()
    loaded_model_0.load_state_dict(torch.load(f=args.model_path, weights_only=True))
    model_0.eval()
    loaded_model_0.eval()
    with torch.inference_mode():
        y_preds = model_0(X_test)
        loaded_model_preds = loaded_model_0(X_test)
    if not torch.equal(y_preds, loaded_model_preds):
        raise SystemExit("the reloaded model predicts differently from the trained one")
    print(f"Trained on {len(X_train)} rows, tested on {len(X_test)}; saved and reloaded")


if __name__ == "__main__":
    main()
