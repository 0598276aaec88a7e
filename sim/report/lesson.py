"""The lesson plan the scenarios serve (Module 5.3, "Scaling Architecture"), as data.

Three lessons and five module-level misconceptions, each with a stable id. Scenarios tag the
misconceptions they refute with these ids (``REFUTES``) and the report's coverage table is built
from the tags. The wording paraphrases ``../shared/seed/000_9cc9a281b049ce94.txt``.
"""

from __future__ import annotations

from sim.errors import UnknownNameError

LESSONS = {
    "mixture-of-experts": "Lesson 1 - Mixture of Experts",
    "long-context-and-efficient-attention": "Lesson 2 - Long context and efficient attention",
    "training-and-serving-at-scale": "Lesson 3 - Training and serving at scale",
}

MISCONCEPTIONS = {
    "moe-is-ensemble": "MoE models are just ensembles of smaller models",
    "params-equal-compute": "More parameters always means proportionally more compute",
    "long-context-is-just-longer-training":
        "Longer context is just a matter of training with longer sequences",
    "parallelism-is-data-splitting": "Parallelism is just splitting the data across GPUs",
    "flash-and-kv-solve-long-context":
        "Flash attention and KV caching solve the long-context problem",
}


def check_lesson(lesson: str) -> str:
    if lesson not in LESSONS:
        raise UnknownNameError("lesson", lesson, list(LESSONS))
    return lesson


def check_misconceptions(tags) -> tuple[str, ...]:
    for tag in tags:
        if tag not in MISCONCEPTIONS:
            raise UnknownNameError("misconception", tag, list(MISCONCEPTIONS))
    return tuple(tags)
