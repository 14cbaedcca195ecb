"""Plan a run before any pixel is decoded: what is there, what is done, what to do and why.

Torch-free on purpose: `--dry-run` answers in the time it takes to walk the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from colorize_cli.discover.find import DiscoverOptions, Job, Skipped, discover
from colorize_cli.discover.listed import not_found, only_listed
from colorize_cli.manifest import Action, Reason, ResumeIndex, manifest_path, settings_key
from colorize_cli.models.paths import recorded_digest
from colorize_cli.settings import RunSettings


@dataclass(frozen=True)
class ModelRef:
    """What a run needs to know of its model before loading it."""

    path: Path
    name: str
    sha256: str  # the file's own digest: part of the settings key, so changing model redoes files
    family: str = "chromanet"


def model_ref(weights: Path) -> ModelRef:
    """Name and digest of a weights file, without loading it: the `.sha256` sidecar's (verified
    at load), or the file hashed (a user's checkpoint comes without one)."""
    digest = recorded_digest(weights)
    if digest is None and weights.is_file():
        from colorize_cli.io.fsutil import sha256_file  # noqa: PLC0415

        digest = sha256_file(weights)
    return ModelRef(path=weights, name=weights.stem, sha256=digest or "unknown", family="")


@dataclass
class Plan:
    settings: RunSettings
    model: ModelRef
    manifest: Path
    settings_key: str
    todo: list[tuple[Job, Reason]] = field(default_factory=list)
    skip: list[tuple[Job, Reason]] = field(default_factory=list)
    not_images: list[Skipped] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)  # --only-from paths the walk did not find

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.skip)


def plan_run(settings: RunSettings, model: ModelRef) -> Plan:
    """Discover the inputs and decide, from the manifest, which ones this run must do."""
    jobs, skipped = discover(settings.input_root, settings.out_root, DiscoverOptions.from_settings(settings))
    path = manifest_path(settings.out_root, settings.shard, settings.manifest)
    key = settings_key(settings.output_affecting(), model.sha256)
    index = ResumeIndex().load(path) if path.is_file() else ResumeIndex()
    plan = Plan(settings=settings, model=model, manifest=path, settings_key=key, not_images=list(skipped))
    if settings.only is not None:  # --only-from: the listed files, forced; nothing else is planned or recorded
        if settings.shard is None:  # a sharded run sees only its share of the list
            plan.not_found = not_found(settings.only, [j.rel.as_posix() for j in jobs] + [s.rel.as_posix() for s in skipped])
        plan.todo = [(job, Reason.LISTED) for job in only_listed(jobs, settings.only)]
        plan.not_images = only_listed(plan.not_images, settings.only)
        return plan
    for job in jobs:
        action, why = index.decide(job.rel, job.input, key, job.output, overwrite=settings.overwrite, retry_failed=settings.retry_failed)
        (plan.todo if action is Action.DO else plan.skip).append((job, why))
    return plan
