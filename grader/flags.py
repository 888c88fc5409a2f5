"""A flag: something about a submission an instructor should look at before trusting its score."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# What raised the flag. Kept short: they are shown in `grader status` and the report.
KINDS = (
    "tamper",   # the notebook's graded or locked cells were edited, deleted, added or duplicated
    "files",    # a submitted file was not a regular file (symlink, hard link, device, fifo...)
    "static",   # the source uses a known way of forging a verdict (found before anything runs)
    "runtime",  # the running code did something refused or recorded by the executor
    "limit",    # a resource limit ended the submission (time, memory, processes, output)
)


@dataclass(frozen=True)
class Flag:
    kind: str
    reason: str  # in words an instructor can act on; names the file and cell where known

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown flag kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Flag":
        return cls(str(data["kind"]), str(data["reason"]))
