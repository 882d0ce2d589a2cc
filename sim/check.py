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

from designs.model import Design, Problem

__all__ = ["config_problems", "ConfigError", "require_runnable", "validation_problems"]


class ConfigError(ValueError):
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
        except ValueError as e:
            out.append(Problem(f"components[{i}]", str(e)))
    return out


def require_runnable(design: Design) -> None:
    """Raise `ConfigError` with every problem when the design cannot run as configured."""
    problems = config_problems(design)
    if problems:
        raise ConfigError(problems)


def validation_problems(design: Design, text: str | None = None) -> list[Problem]:
    """What `sdw validate` adds to a design that parsed: the hardware-configuration problems,
    each with its line in `text` (the design's YAML) when given.

    The one check after parsing: the CLI's `validate`, the app's Builder, YAML tab, Save and
    upload all call this, so a design the CLI refuses is never accepted silently elsewhere.
    """
    from designs.io import locate

    problems = config_problems(design)
    return locate(problems, text) if problems and text is not None else problems
