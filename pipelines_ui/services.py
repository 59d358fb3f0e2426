"""Operator jobs that span apps: seeding the demo workspace."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from pipelines_ui.accounts.models import Membership, Role, Workspace
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.data.models import Datastore
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.pipelines.services import create_pipeline

DEMO_USER = "demo"
DEMO_SPEC = {
    "parameters": {"rows": {"type": "int", "default": 1000}},
    "nodes": [
        {
            "id": "generate",
            "component": "python-script@1",
            "ports": {"outputs": [{"name": "table", "type": "table"}]},
            "params": {
                "rows": "${rows}",
                "code": (
                    "import csv, random\n"
                    "from runner import context\n"
                    "rows = context.param('rows')\n"
                    "path = context.output_path('table') / 'data.csv'\n"
                    "with open(path, 'w', newline='') as f:\n"
                    "    w = csv.writer(f)\n"
                    "    w.writerow(['x', 'y'])\n"
                    "    for i in range(rows):\n"
                    "        x = random.Random(i).random()\n"
                    "        w.writerow([x, 3 * x + 1])\n"
                    "print(f'wrote {rows} rows')\n"
                ),
            },
            "position": {"x": 60, "y": 80},
        },
        {
            "id": "fit",
            "component": "python-script@1",
            "ports": {"inputs": [{"name": "table", "type": "table"}]},
            "params": {
                "code": (
                    "import csv\n"
                    "from runner import context\n"
                    "rows = list(csv.DictReader(open(context.input_path('table') / 'data.csv')))\n"
                    "xs = [float(r['x']) for r in rows]; ys = [float(r['y']) for r in rows]\n"
                    "n = len(xs); mx = sum(xs) / n; my = sum(ys) / n\n"
                    "slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / "
                    "sum((x - mx) ** 2 for x in xs)\n"
                    "for i in range(1, 21):\n"
                    "    context.log_metric('loss', 1.0 / i, step=i)\n"
                    "print(f'slope={slope:.3f}')\n"
                ),
            },
            "position": {"x": 60, "y": 240},
        },
    ],
    "edges": [{"from": "generate.table", "to": "fit.table"}],
}

# The example of docs/components.md (a test keeps the two the same), laid out for the editor.
DIABETES_SPEC = {
    "parameters": {
        "test_fraction": {"type": "float", "default": 0.2},
        "automl_budget_s": {"type": "int", "default": 5},
    },
    "nodes": [
        {"id": "data", "component": "sample-data@1", "params": {"dataset": "diabetes"},
         "position": {"x": 300, "y": 20}},
        {"id": "split", "component": "split-data@1",
         "params": {"test_fraction": "${test_fraction}", "seed": 42},
         "position": {"x": 300, "y": 130}},
        {"id": "automl", "component": "automl@1",
         "params": {"metric": "rmse", "time_budget_s": "${automl_budget_s}", "max_trials": 12,
                    "estimators": ["ridge", "lasso", "random_forest", "gradient_boosting"]},
         "position": {"x": 120, "y": 240}},
        {"id": "ridge", "component": "train-sklearn@1",
         "params": {"estimator": "ridge", "hyperparameters": {"alpha": 0.1}},
         "position": {"x": 480, "y": 240}},
        {"id": "evaluate_automl", "component": "evaluate@1",
         "params": {"metric_prefix": "automl_"}, "position": {"x": 120, "y": 350}},
        {"id": "evaluate_ridge", "component": "evaluate@1",
         "params": {"metric_prefix": "ridge_"}, "position": {"x": 480, "y": 350}},
        {"id": "compare", "component": "compare-models@1", "params": {"metric": "rmse"},
         "position": {"x": 300, "y": 460}},
        {"id": "register", "component": "register-model@1",
         "params": {"name": "diabetes", "description": "the better of AutoML and ridge"},
         "position": {"x": 180, "y": 570}},
        {"id": "deploy", "component": "deploy-model@1", "params": {"name": "diabetes"},
         "position": {"x": 180, "y": 680}},
        {"id": "score", "component": "parallel-run@1", "params": {"batch_size": 25},
         "position": {"x": 480, "y": 570}},
    ],
    "edges": [
        {"from": "data.data", "to": "split.data"},
        {"from": "split.train", "to": "automl.data"},
        {"from": "split.train", "to": "ridge.data"},
        {"from": "automl.model", "to": "evaluate_automl.model"},
        {"from": "split.test", "to": "evaluate_automl.data"},
        {"from": "ridge.model", "to": "evaluate_ridge.model"},
        {"from": "split.test", "to": "evaluate_ridge.data"},
        {"from": "automl.model", "to": "compare.model_a"},
        {"from": "evaluate_automl.metrics", "to": "compare.metrics_a"},
        {"from": "ridge.model", "to": "compare.model_b"},
        {"from": "evaluate_ridge.metrics", "to": "compare.metrics_b"},
        {"from": "compare.best", "to": "register.model"},
        {"from": "compare.metrics", "to": "register.metrics"},
        {"from": "register.model", "to": "deploy.model"},
        {"from": "compare.best", "to": "score.model"},
        {"from": "split.test", "to": "score.data"},
    ],
}


@dataclass
class SeedResult:
    workspace: Workspace
    username: str
    password: str | None  # set only when the user was created now

    def describe(self) -> str:
        if self.password:
            return (
                f"Created workspace '{self.workspace.name}' and user '{self.username}' "
                f"with password: {self.password}"
            )
        return (
            f"Workspace '{self.workspace.name}' and user '{self.username}' already exist "
            f"(reset the password with: manage.py changepassword {self.username})."
        )


@transaction.atomic
def seed_demo() -> SeedResult:
    """Idempotent: creates what is missing, keeps what exists."""
    from django.conf import settings

    workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
    User = get_user_model()
    user = User.objects.filter(username=DEMO_USER).first()
    password = None
    if user is None:
        password = secrets.token_urlsafe(12)  # never a shipped default (docs/reliability.md S1)
        user = User.objects.create_user(DEMO_USER, password=password, is_staff=True,
                                        is_superuser=True)
    Membership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": Role.ADMIN}
    )
    ComputeTarget.objects.get_or_create(
        name="local",
        defaults={
            "workspace": workspace,
            "description": "This machine (started by `make up`).",
            "max_concurrency": 2,
            "is_default": True,
        },
    )
    Datastore.objects.get_or_create(
        workspace=workspace, name="default",
        defaults={"url": settings.DATASTORE_URL, "is_default": True},
    )
    demos = (("Linear fit", "Generate a table, fit a line, log the loss.", DEMO_SPEC),
             ("Diabetes regression", "AutoML against ridge on scikit-learn's diabetes data; "
              "the better model is registered as 'diabetes' and deployed.", DIABETES_SPEC))
    for name, description, spec in demos:
        if not Pipeline.objects.filter(workspace=workspace, name=name).exists():
            create_pipeline(workspace, name=name, description=description, spec=spec,
                            user=user)
    return SeedResult(workspace=workspace, username=DEMO_USER, password=password)
