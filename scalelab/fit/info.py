"""The fit file's record of how a fit was made (records.FitInfo), built from its FitSpec and inputs."""

from __future__ import annotations

from scalelab.fit.records import Bootstrap, Columns, FitInfo, InputFile
from scalelab.fit.results import now_iso


def fit_info(spec, inputs) -> FitInfo:
    """How the fit was made: the fit file's top-level record (docs/interfaces.md "Fit file")."""
    from scalelab import __version__

    ols = spec.approach in (1, 2)
    loss = (
        {"kind": "ols"}
        if ols
        else {
            "kind": spec.loss,
            "delta": spec.delta,
            "overestimate_penalty": spec.overestimate_penalty,
            "weights": spec.weights or "none",
        }
    )
    boot = spec.bootstrap > 0 or not ols
    return FitInfo(
        scalelab_version=__version__,
        created=now_iso(),
        inputs=[InputFile.from_dict(i) for i in inputs or []],
        flop_convention=spec.convention,
        by=list(spec.by),
        approach=spec.approach,
        loss=loss,
        intervals=("bootstrap" if spec.bootstrap > 0 else "ols") if ols else None,
        bootstrap=Bootstrap(
            n=int(spec.bootstrap),
            seed=spec.seed if boot else None,
            level=spec.level,
            unit=("run" if spec.run_col else "row") if boot else None,
        ),
        share_e=bool(spec.share_e),
        columns=Columns(
            N=spec.n_col,
            D=spec.d_col or f"{spec.c_col}/(6 N)",
            loss=spec.loss_col,
            C=spec.c_col or "6ND",
            run=spec.run_col,
        ),
        drop_top_loss=spec.drop_top_loss,
        all_checkpoints=spec.all_checkpoints,
        spec=spec.to_dict(),
    )
