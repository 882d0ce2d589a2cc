"""`Refusal`: the one exception type for a deliberate, worded refusal of the user's input.

Every layer raises a subclass of it when the input (a design, a name, a budget) is what is
wrong — `designs.io.DesignFileError`, `sim.EstimateError`, `sim.SimulationRefused`,
`designs.workspace.WorkspaceError`, … — so a front end can tell the user's mistakes from
the program's: ``sdw`` prints a `Refusal` as ``error: …`` (exit 1) and anything else as an
*internal error* with the ``SDW_DEBUG=1`` hint. It lives in the bottom layer so that every
layer can raise it.

Usage::

    >>> from components.errors import Refusal
    >>> class BudgetTooSmall(Refusal):
    ...     '''The budget cannot hold one batch.'''
    >>> isinstance(BudgetTooSmall("raise --max-requests"), ValueError)
    True
"""

from __future__ import annotations

__all__ = ["Refusal"]


class Refusal(ValueError):
    """The input cannot be used as given; the message says what is wrong and what to do.

    A `ValueError` subclass, so code that already catches `ValueError` keeps working.
    """
