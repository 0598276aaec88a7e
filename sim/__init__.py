"""clustersim: simulate dense and Mixture-of-Experts transformers on GPU clusters.

Three inputs are kept apart: a model (``sim.model.ModelConfig``), a plan
(``sim.plan.ParallelPlan`` for training, a serving policy for inference) and a cluster
(``hardware.Cluster``). Pure cost functions (``sim.costs``) lower model x shape x plan into
``sim.ops.Op`` records; the analytic backend sums them, the SimPy engine schedules them.
"""

__version__ = "0.1.0"
