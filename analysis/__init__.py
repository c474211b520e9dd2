"""popeval.analysis: admin population and linkage, weighting, matching, effects and the pipeline."""

__all__: list[str] = []
