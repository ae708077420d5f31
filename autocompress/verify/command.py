"""``autocompress verify``: measure a run's front on its device; also the end of ``search --verify``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from autocompress.run.verification import Verification

if TYPE_CHECKING:
    from autocompress.verify.measure import Targets


def verify_front(plan: Targets) -> Verification:
    """Measure the planned front and keep the result in its run folder; the caller holds the
    run's lock (or is the search, which holds it)."""
    from autocompress.verify.measure import measure

    verification = measure(plan)
    plan.run.write_verification(verification)
    return verification


def print_verification(verification: Verification) -> None:
    statistic = verification.statistic
    typer.echo(f"front measured on {verification.device} ({verification.timing}); "
               f"predicted: {verification.latency_label}")
    typer.echo(f"{'trial':>6} {'baseline':<13} {'predicted':>10} {'median':>10} {'min':>10} {'error':>8}  flags "
               "(predicted: the profile's statistic; median, min: measured, ms per batch)")
    members = list(verification.front)
    if verification.float_baseline and verification.float_baseline.trial not in {m.trial for m in members}:
        members.append(verification.float_baseline)
    for m in members:
        typer.echo(f"{m.trial:>6} {m.label or '-':<13} {m.predicted_ms[statistic]:>10.3f} "
                   f"{m.measured_ms['median']:>10.3f} {m.measured_ms['min']:>10.3f} {m.error_pct(statistic):>7.1f}%  "
                   + "; ".join(m.flags))
    tau = "n/a (fewer than 2 front models)" if verification.kendall_tau is None else f"{verification.kendall_tau:.3f}"
    flagged = sum(bool(m.flags) for m in verification.front)
    typer.echo(f"rank agreement of measured vs predicted {statistic} over the front: Kendall tau {tau}; "
               f"{flagged} of {len(verification.front)} front model(s) flagged")
    typer.echo(verification.offset_note())


def verify_command(
    run: Annotated[str, typer.Argument(help="run folder, or a run name under results/")],
) -> None:
    """Measure every model on RUN's front on its profile's device, against its predicted latency."""
    from autocompress.report import write_report
    from autocompress.run.run import Run, resolve
    from autocompress.verify.measure import targets

    opened = Run.open(resolve(run))
    plan = targets(opened)  # every check before the lock file or anything else is written
    with opened.files.lock():
        verification = verify_front(plan)
        print_verification(verification)
        typer.echo(f"wrote {opened.files.verification}; report: {write_report(opened.path)}")
