"""The store is the one owner of every Job transition: no module outside voxbatch/store assigns
to a Job column. An AST scan of the package, so a regression fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

from voxbatch.store.models import Job

PACKAGE = Path(__file__).resolve().parents[2] / "voxbatch"
COLUMNS = frozenset(Job.model_fields)


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        found = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        found = [node.target]
    else:
        return []
    flat: list[ast.expr] = []
    while found:
        target = found.pop()
        if isinstance(target, ast.Tuple | ast.List):
            found.extend(target.elts)
        else:
            flat.append(target)
    return flat


def job_column_writes(source: str) -> list[str]:
    """Assignments (plain, chained, tuple, augmented, setattr) to an attribute named like a
    Job column on anything but `self` (a class keeping its own state, e.g. `self.state`)."""
    writes: list[str] = []
    for node in ast.walk(ast.parse(source)):
        for target in _targets(node):
            if (
                isinstance(target, ast.Attribute)
                and target.attr in COLUMNS
                and not (isinstance(target.value, ast.Name) and target.value.id == "self")
            ):
                writes.append(f"{node.lineno}: {ast.unparse(target)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) >= 2
            and not (isinstance(node.args[1], ast.Constant) and node.args[1].value not in COLUMNS)
        ):
            writes.append(f"{node.lineno}: {ast.unparse(node)}")
    return writes


def test_the_scan_sees_every_form_of_write() -> None:
    source = (
        "job.state = 1\n"
        "job.lease_owner = job.lease_expires_at = None\n"
        "job.content_sha256, job.size_bytes = 'a', 1\n"
        "job.attempts += 1\n"
        "session.get_one(Job, 1).partial_text = 't'\n"
        "setattr(job, 'language', 'en')\n"
        "self.state = 2\n"  # a class's own attribute, not a Job's
        "job.colour = 3\n"  # not a Job column
    )
    assert len(job_column_writes(source)) == 8


def test_no_module_outside_the_store_writes_a_job_column() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): writes
        for path in sorted(PACKAGE.rglob("*.py"))
        if "store" not in path.relative_to(PACKAGE).parts[:1]
        and (writes := job_column_writes(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "Job transitions belong in voxbatch/store (named functions there)"
