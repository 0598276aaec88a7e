"""Calibration of the kernel and collective models from measured tables.

``sim.calibration.rows`` turns rows in the schema of ``../shared/data/kernels/kernels.csv``
into clustersim Ops; ``fit_kernels`` fits an accelerator's kernel models
(``hardware.kernel_models``) to them with leave-one-model-out errors; ``fit_nccl`` fits a
link's NCCL model to nccl-tests tables or collective rows with leave-one-size-decade-out
errors; ``table`` builds the committed kernel-validation table. Fitting uses
``scipy.optimize.least_squares`` on log time ratios (relative error, so a 5 us kernel counts
as much as a 5 ms one).
"""
