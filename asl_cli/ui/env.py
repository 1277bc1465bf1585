"""The `asl check-env` report (a dict from `asl_cli.tools.env_report.collect_report`) as Rich tables."""

from __future__ import annotations

from typing import Any, Mapping

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from asl_cli.ui.widgets import NA


def _yes_no(ok: Any, yes: str = "yes", no: str = "no") -> Text:
    if ok is None:
        return Text(NA, style="dim")
    return Text(yes, style="green") if ok else Text(no, style="yellow")


def env_report_view(report: Mapping[str, Any]) -> RenderableType:
    """The `asl check-env` report (a dict from `asl_cli.tools.env_report.collect_report`) as tables."""
    sysf, tf, nv = report.get("system", {}), report.get("torch", {}), report.get("nvml", {})
    parts: list[RenderableType] = []

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    facts.add_row("python", f"{sysf.get('python', NA)} ({sysf.get('implementation', '')})  {sysf.get('executable', '')}")
    facts.add_row("platform", f"{sysf.get('platform', NA)}  {sysf.get('cpu_count', '?')} CPUs")
    facts.add_row("torch", Text(str(tf.get("version") or "not importable"),
                                style="" if tf.get("version") else "bold red"))
    cuda = _yes_no(tf.get("cuda_available"))
    if tf.get("cuda_version"):
        cuda.append(f"  (built for CUDA {tf['cuda_version']})", style="default")
    facts.add_row("CUDA available", cuda)
    facts.add_row("cuDNN", str(tf.get("cudnn_version") or NA))
    nvml_text = Text(str(nv.get("status", NA)), style="green" if nv.get("status") == "ok" else "yellow")
    if nv.get("message"):
        nvml_text.append(f"  {nv['message']}", style="dim")
    facts.add_row("NVML", nvml_text)
    facts.add_row("driver", str(nv.get("driver") or NA))
    comp = report.get("compile", {})
    for dev in ("cpu", "cuda"):
        c = comp.get(dev, {})
        t = _yes_no(c.get("ok"))
        t.append(f"  {c.get('why', '')}", style="dim")
        facts.add_row(f"torch.compile {dev}", t)
    parts.append(Panel(facts, title=Text("environment", style="bold"), title_align="left", box=box.ROUNDED))

    gpus = report.get("gpus") or []
    gt = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
               title="GPUs" + (" (fake)" if report.get("fake_gpus") else ""))
    for col, just in (("#", "right"), ("name", "left"), ("memory", "right"), ("cc", "right"), ("bf16", "left"),
                      ("driver", "left"), ("from", "left")):
        gt.add_column(col, justify=just, no_wrap=True)
    for g in gpus:
        if g.get("lost"):
            gt.add_row(str(g.get("index")), Text(f"{g.get('name') or 'unknown'}  LOST", style="bold red"),
                       NA, NA, NA, str(g.get("driver") or NA), str(g.get("source")))
            continue
        mem = g.get("memory_total_mib")
        gt.add_row(str(g.get("index")), str(g.get("name") or NA), NA if mem is None else f"{mem:,} MiB",
                   str(g.get("compute_capability") or NA), _yes_no(g.get("bf16")), str(g.get("driver") or NA),
                   Text(str(g.get("source")), style="magenta" if g.get("source") == "fake" else "dim"))
    parts.append(gt if gpus else Text("GPUs: none found", style="yellow"))

    pk = Table.grid(padding=(0, 2))
    pk.add_column(style="dim")
    pk.add_column()
    for name, ver in (report.get("packages") or {}).items():
        pk.add_row(name, Text(ver, style="") if ver else Text("not installed", style="yellow"))
    parts.append(Panel(pk, title=Text("packages", style="bold"), title_align="left", box=box.ROUNDED))

    extras = report.get("extras")
    if extras:
        ex = Table.grid(padding=(0, 2))
        ex.add_column(style="bold", no_wrap=True)
        ex.add_column(no_wrap=True)
        ex.add_column()
        for e in extras:
            state = (Text("installed", style="green") if e.get("installed") else
                     Text("not installed", style="yellow"))
            what = Text(str(e.get("enables", "")))
            if not e.get("installed"):
                what.append(f"\n→ {e.get('install', '')}", style="bold")
            ex.add_row(str(e.get("name")), state, what)
        missing = [e for e in extras if not e.get("installed")]
        foot = Text.assemble(("all extras at once: ", "dim"), (str(report.get("install_all", "")), "bold" if missing
                                                                  else "dim"))
        parts.append(Panel(Group(ex, foot), title=Text("optional extras", style="bold"), title_align="left",
                           box=box.ROUNDED, border_style="yellow" if missing else "green"))

    default = report.get("default_data")
    if default:
        from asl_cli.units import human_bytes

        dd = Table.grid(padding=(0, 2))
        dd.add_column(style="dim", no_wrap=True)
        dd.add_column()
        dd.add_row("folder", str(default.get("dir")))
        if default.get("generated"):
            total = (default.get("bytes") or 0) + (default.get("cache_bytes") or 0)
            size = f"{default.get('sequences', 0):,} sequences, {human_bytes(default.get('bytes') or 0)}"
            if default.get("cache_ready"):
                size += f" + prepared cache {human_bytes(default.get('cache_bytes') or 0)} = {human_bytes(total)}"
            dd.add_row("size", size)
            if default.get("cache_ready"):
                dd.add_row("cache", str(default.get("cache_dir")))
        else:
            dd.add_row("size", Text(f"not generated yet ({default.get('sequences', 0):,} sequences on the first "
                                    f"asl train without --data)", style="yellow"))
        dd.add_row("", Text("asl train without --data uses it; $ASL_CACHE moves it", style="dim"))
        parts.append(Panel(dd, title=Text("synthetic default set", style="bold"), title_align="left",
                           box=box.ROUNDED))

    data = report.get("data")
    if data is not None:
        dt = Table.grid(padding=(0, 2))
        dt.add_column(style="dim")
        dt.add_column()
        dt.add_row("folder", str(data.get("dir")))
        if data.get("index_error"):
            dt.add_row("index", Text(str(data["index_error"]), style="red"))
        else:
            dt.add_row("sequences", f"{data.get('sequences', 0):,} ({data.get('signs', '?')} signs, "
                                    f"{data.get('participants', '?')} participants)")
            dt.add_row("files OK", Text(f"{data.get('ok_files', 0):,}", style="green"))
            dt.add_row("files bad", Text(f"{data.get('bad_files', 0):,}",
                                         style="red" if data.get("bad_files") else "green"))
            for err in data.get("errors") or []:
                dt.add_row("", Text(err, style="red"))
        parts.append(Panel(dt, title=Text("data", style="bold"), title_align="left", box=box.ROUNDED,
                           border_style="green" if data.get("ok") else "red"))

    for w in report.get("warnings") or []:
        parts.append(Text.assemble(("warning: ", "bold yellow"), w))
    for p in report.get("problems") or []:
        parts.append(Text.assemble(("problem: ", "bold red"), p))
    rec = report.get("recommendation") or {}
    line = Text.assemble(("recommended preset: ", "bold"), (str(rec.get("preset", NA)), "bold cyan"),
                         ("  " + str(rec.get("why", "")), "dim"))
    if rec.get("with_cuda_torch"):
        line.append(f"  (with a CUDA build of torch: {rec['with_cuda_torch']})", style="dim")
    parts.append(line)
    return Group(*parts)
