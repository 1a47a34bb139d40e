"""The experiment's workflow and its parts: ``workflow.py`` (``ExperimentWorkflow``),
``decisions.py`` (who won, who is out, the shares), ``board.py`` (what people see)."""

from workflows.experiment.workflow import ExperimentWorkflow

__all__ = ["ExperimentWorkflow"]
