"""Configuration checks that need the hardware models: does each component's setup make sense?

A design can be valid as a file (every field typed and in bounds, every name known) and still
describe something that cannot run: a 70B model in BF16 on one 80 GB GPU, a full fine-tune
whose optimizer states exceed the cluster's memory. These checks run before any estimate or
simulation and report every such problem at once, each naming the component and the numbers.

Usage::

    >>> from designs.io import load_design
    >>> from sim.check import config_problems
    >>> config_problems(load_design("designs/library/llm_serving.yaml"))
    []
"""

from __future__ import annotations

from components.errors import Refusal

from designs.model import Design, Problem

__all__ = ["config_problems", "ConfigError", "require_runnable"]


class ConfigError(Refusal):
    """The design cannot run as configured; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(f"{p.path}: {p.message}" for p in problems))


def config_problems(design: Design) -> list[Problem]:
    """Every hardware-configuration error in the design (empty when it can run)."""
    from .llm.roofline import ServingSpec
    from .pipeline import training_estimate

    out: list[Problem] = []
    for i, comp in enumerate(design.components):
        try:
            if comp.kind == "llm_server":
                ServingSpec.from_component(comp)
            elif comp.kind == "training_job":
                training_estimate(comp)
            elif comp.kind == "vector_db" and comp.index_type is not None:
                from .quality.retrieval import retrieval_estimate

                retrieval_estimate(comp, design)
            elif comp.kind == "judge":
                from .quality.evalstats import eval_estimate

                eval_estimate(comp, design)
        except ValueError as e:
            out.append(Problem(f"components[{i}]", str(e)))
    return out


def require_runnable(design: Design) -> None:
    """Raise `ConfigError` with every problem when the design cannot run as configured."""
    problems = config_problems(design)
    if problems:
        raise ConfigError(problems)

