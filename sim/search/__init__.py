"""Plan search: which parallel plan should I train with, which serving configuration should I
deploy? ``search_train`` walks every legal training plan and ranks it with the analytic
backend (optionally re-simulating the best with the DES); ``search_serve`` bisects the highest
request rate each serving configuration sustains within an SLO. See docs/design-search.md."""

from sim.search.train import OBJECTIVES, TrainSearch, search_train

__all__ = ["OBJECTIVES", "TrainSearch", "search_train"]
