"""Commands of the band model: train, eval-model, continue, generate."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..cli import finite  # argparse type: nan and inf refused
from ..errors import ConfigError

SIZES = {
    # name: (d_model, n_layers, n_heads, d_ff, context)
    "tiny": (64, 2, 2, 128, 64),
    "small": (160, 4, 4, 480, 256),
}


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train the band model on the symbolic corpora, or on your sessions",
                       description="Train the band's model (seeded, split by piece, checkpointed, resumable) on "
                                   "music21's corpus and ../shared/data/symbolic when present; with --sessions, "
                                   "fine-tune it on your recorded sessions (your notes as the lead, the band's "
                                   "notes of the takes marked with `improv keep`).")
    p.add_argument("--model", dest="out", metavar="FILE", default=None,
                   help="weights file to write (default: models/band.pt, with --sessions models/you.pt; "
                        "`improv listen --model FILE` plays with it)")
    p.add_argument("--out", dest="out", help=argparse.SUPPRESS)  # the old spelling of --model
    p.add_argument("--sessions", metavar="DIR", default=None,
                   help="fine-tune on the sessions `improv listen --record DIR` wrote (a card goes beside the weights)")
    p.add_argument("--from", dest="base", metavar="FILE", default=None,
                   help="with --sessions: the model to start from (default models/band.pt)")
    p.add_argument("--minutes", type=finite, default=None,
                   help="with --sessions: stop after this many minutes of training (checkpointed: the same "
                        "command again goes on; default: no limit)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps (default 3000, the shipped model; with --sessions 400)")
    p.add_argument("--batch", type=int, default=12, help="windows per step (default 12)")
    p.add_argument("--size", choices=list(SIZES), default="small", help="model size (default small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared 2-core machine two threads were 5x slower)")
    p.add_argument("--jobs", type=int, default=2, help="processes parsing the corpora (default 2)")
    p.add_argument("--sources", default="all", help="comma list of corpora, or all (default: all present)")
    p.add_argument("--cache", default=None, help="parsed-corpus cache folder (default ~/.cache/improv)")
    p.add_argument("--checkpoints", default=None, help="checkpoint folder (default <cache>/train-<size>-s<seed>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--bf16", action=argparse_bool(), default=True, help="bfloat16 autocast for matmuls")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N files of each corpus, not cached (quick trials)")
    p.add_argument("--chords", action="store_true",
                   help="give the model the chord control: the chord of every frame (POP909's annotations, "
                        "chords found in Nottingham's chord track and the chorales; unknown elsewhere and in "
                        "30%% of windows)")
    p.add_argument("--init", metavar="FILE", default="",
                   help="start from this model's weights (fine-tuning; its size is used); e.g. models/band.pt")
    p.add_argument("--lr", type=finite, default=None, help="peak learning rate (default 2e-3; 5e-4 with --init)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 100; 50 with --init)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("keep", help="mark recorded sessions you liked: `train --sessions` learns their band parts",
                       description="Mark takes you liked: `improv train --sessions DIR` learns the band's notes "
                                   "of kept sessions (your own notes are learnt from every session). Writes "
                                   "keep.json into each session folder.")
    p.add_argument("folders", nargs="+", metavar="SESSION", help="session folders (`improv listen --record` made)")
    p.add_argument("--bands", default="bass,mid,high", help="the band parts you liked (default bass,mid,high)")
    p.add_argument("--undo", action="store_true", help="unmark: learn only your notes from these sessions")
    p.set_defaults(func=cmd_keep)

    p = sub.add_parser("eval-model", help="score the band model on held-out pieces",
                       description="Held-out NLL against an n-gram baseline, and statistics of accompaniment "
                                   "generated under held-out lead lines against the real accompaniment.")
    p.add_argument("--model", default=None, help="weights (default models/band.pt)")
    p.add_argument("--pieces", type=int, default=25, help="held-out pieces per corpus to accompany (default 25)")
    p.add_argument("--bars", type=int, default=32, help="bars per piece to accompany (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=None)
    p.add_argument("--sources", default="all")
    p.add_argument("--temperature", type=finite, default=None,
                   help="sampling temperature for the accompaniment (default: the model's recommended)")
    p.add_argument("--top-p", type=finite, default=None, help="nucleus top-p (default: the model's recommended)")
    p.add_argument("--listen-bars", type=int, default=1,
                   help="bars the band listens to the player before it comes in (default 1); scored from there")
    p.add_argument("--keep-key", type=finite, default=0.0, metavar="NATS",
                   help="accompany with the keep_key hook of this strength (default 0: the bare model)")
    p.add_argument("--harmonize", type=finite, default=0.0, metavar="NATS",
                   help="accompany with the harmonize hook of this strength (default 0: the bare model)")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="held-out split to score (val: for choosing settings; default test)")
    p.add_argument("--skip-nll", action="store_true", help="only the accompaniment statistics")
    p.add_argument("--skip-accompaniment", action="store_true", help="only the likelihood")
    p.add_argument("--chords", action="store_true",
                   help="a model with the chord control is given the corpus's chords for the likelihood "
                        "(default: every chord unknown)")
    p.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    p.set_defaults(func=cmd_eval)

    for name, helptext in (("continue", "continue MIDI files with the band model"),
                           ("generate", "generate music from nothing with the band model")):
        p = sub.add_parser(name, help=helptext, description=helptext + ".")
        if name == "continue":
            p.add_argument("files", nargs="+", metavar="IN.mid")
        p.add_argument("--seconds", type=finite, default=20.0, help="length to generate (default 20)")
        p.add_argument("--variations", type=int, default=1, help="versions per input, seeds seed, seed+1, ...")
        p.add_argument("--voices", default="all", help="voices to generate: comma list of player,bass,mid,high "
                                                      "(default all; the others rest, or in continue keep silent; "
                                                      "notes on the input's channel 10 are drums, kept as they are)")
        p.add_argument("--tempo", dest="bpm", type=finite, default=None, metavar="BPM",
                       help="tempo (default: the file's, or 100 for generate)")
        p.add_argument("--bpm", dest="bpm", type=finite, help=argparse.SUPPRESS)  # the old spelling of --tempo
        p.add_argument("--unmetered", action="store_true", help="seconds grid (125 ms) instead of beats")
        p.add_argument("--temperature", type=finite, default=None, help="default: the model's recommended")
        p.add_argument("--top-p", type=finite, default=None, help="default: the model's recommended")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--model", default=None, help="weights (default models/band.pt)")
        p.add_argument("--out-dir", dest="out", metavar="DIR", default=None,
                       help="folder to write to (default: beside the input, or .)")
        p.add_argument("--out", "-o", dest="out", help=argparse.SUPPRESS)  # the old spelling; -o is a MIDI port elsewhere
        p.add_argument("--json", action="store_true",
                       help="also write the notes as JSON beside each MIDI file (NAME.json: seed, bpm and "
                            "notes, each {onset, duration, pitch, velocity, voice} in seconds, as the HTTP API)")
        p.set_defaults(func=cmd_continue if name == "continue" else cmd_generate)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _sources(text: str) -> list[str]:
    from .data import SOURCES, available_sources

    if text == "all":
        return available_sources()
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SOURCES]
    if bad:
        raise ConfigError(f"--sources: unknown corpus {bad[0]!r}; use all or a comma list of {','.join(SOURCES)}")
    missing = [s for s in names if s not in available_sources()]
    if missing:
        raise ConfigError(f"--sources: {missing[0]} is not present (see ../shared/data/README.md)")
    return names


class _Bars:
    """Progress fed by (stage, done, total[, info]) callbacks: rich bars on a terminal, else a
    plain line per stage at most every 30 s (for logs of runs in the background)."""

    def __init__(self, console, every: float = 30.0):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.live = console.is_terminal
        self.every = every
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console)
        self.tasks: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.t0 = time.monotonic()

    def __enter__(self):
        if self.live:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        if not self.live:
            now = time.monotonic()
            if done >= total or now - self.last.get(stage, 0.0) >= self.every:
                self.last[stage] = now
                self.console.print(f"[{now - self.t0:7.0f} s] {stage}: {done}/{total} {info}")
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, info="")
        self.progress.update(self.tasks[stage], completed=done, total=total, info=info)


def _data(args, console, bars):
    from .data import default_cache_dir, load_rendering

    cache = Path(args.cache) if args.cache else default_cache_dir()
    sources = _sources(args.sources)
    t0 = time.monotonic()
    if getattr(args, "limit", None):
        from .data import load_pieces, render

        r = render(load_pieces(sources, cache, jobs=1, progress=bars, limit=args.limit), bars)
    else:
        r = load_rendering(sources, cache, jobs=getattr(args, "jobs", 1), progress=bars)
    if r.n_frames == 0:
        raise ConfigError(f"no music found in {', '.join(sources)}")
    return r, sources, time.monotonic() - t0


def _say_resume(console, ckpt: Path, fresh: bool) -> None:
    """Say so when a run goes on from a checkpoint of an earlier one."""
    if (ckpt / "checkpoint.pt").exists() and not fresh:
        import torch

        done = torch.load(ckpt / "checkpoint.pt", map_location="cpu", weights_only=False).get("step", 0)
        console.print(f"resuming from step {done} of {ckpt / 'checkpoint.pt'} (--fresh to start over)")


def _progress(bars, what: str):
    """The training loop's progress callback: a bar with the loss (and the validation loss)."""
    def progress(step, total, info):
        text = f"loss {info['loss']:.3f}" + (f" val {info['val']:.3f}" if "val" in info else "")
        bars(what, step, total, text)
    return progress


def cmd_train(args) -> int:
    if args.sessions is not None:
        return cmd_finetune(args)
    if args.base is not None or args.minutes is not None:
        raise ConfigError("--from and --minutes go with --sessions DIR (fine-tuning on your sessions)")
    import torch

    from .encoding import CHORD_NAMES
    from .net import ModelConfig
    from .store import default_model_path
    from .train import TrainSettings, train

    args.steps = 3000 if args.steps is None else args.steps
    if args.steps < 1 or args.batch < 1 or args.threads < 1:
        raise ConfigError("--steps, --batch and --threads must be positive")
    torch.set_num_threads(args.threads)
    console = _console()
    d, L, H, ff, ctx = SIZES[args.size]
    cfg = ModelConfig(d_model=d, n_layers=L, n_heads=H, d_ff=ff, head_hidden=d, context=ctx, dropout=0.0,
                      chords=args.chords)
    init = getattr(args, "init", "")
    if init:
        from .store import load_model

        base = load_model(init)  # ModelError naming the file if it is not a model
        cfg = ModelConfig(**{**base.config.to_dict(), "dropout": 0.0, "chords": args.chords or base.config.chords})
        init = str(Path(init).resolve())
    lr = args.lr if args.lr is not None else (5e-4 if init else 2e-3)
    warmup = args.warmup if args.warmup is not None else (50 if init else 100)
    if lr <= 0 or warmup < 0:
        raise ConfigError("--lr must be positive and --warmup at least 0")
    st = TrainSettings(steps=args.steps, batch=args.batch, seed=args.seed, bf16=args.bf16, lr=lr, warmup=warmup,
                       init_from=init)
    out = Path(args.out) if args.out else default_model_path()
    with _Bars(console) as bars:
        r, sources, data_s = _data(args, console, bars)
        from .data import default_cache_dir

        cache = Path(args.cache) if args.cache else default_cache_dir()
        ckpt = Path(args.checkpoints) if args.checkpoints else cache / f"train-{args.size}-s{args.seed}"
        train_r, val_r = r.where(split="train"), r.where(split="val")
        console.print(f"data: {len(set(r.piece.tolist()))} pieces from {', '.join(sources)}; "
                      f"{train_r.n_frames:,} training frames, {val_r.n_frames:,} validation frames "
                      f"({data_s:.0f} s to load)")

        _say_resume(console, ckpt, args.fresh)
        progress = _progress(bars, "training")

        t0 = time.monotonic()
        facts = train(train_r, val_r, cfg, st, out, ckpt, resume=not args.fresh, progress=progress,
                      meta={"sources": sources, "size": args.size, "config": cfg.to_dict(),
                            **({"chord_vocabulary": list(CHORD_NAMES) + ["unknown"]} if cfg.chords else {}),
                            "pieces": {s: int(sum(1 for p in set(r.piece.tolist()) if r.sources[p] == s))
                                       for s in sources}})
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {facts['parameters']:,} parameters); "
                  f"{facts['steps']} steps, {facts['train_seconds'] / 60:.1f} min of training "
                  f"({(time.monotonic() - t0) / 60:.1f} min this run), final validation loss {facts['val_loss']:.4f}")
    return 0


def cmd_keep(args) -> int:
    from .sessions import keep

    bands = tuple(b.strip() for b in args.bands.split(",") if b.strip())
    if not bands:
        raise ConfigError("--bands: give a comma list of bass,mid,high")
    for folder in args.folders:
        path = keep(folder, bands, undo=args.undo)
        print(f"{folder}: {'no longer kept' if args.undo else 'kept (' + ','.join(bands) + ')'} ({path.name})")
    return 0


def cmd_finetune(args) -> int:
    """``improv train --sessions DIR``: the loop of ``cmd_train`` started from ``--from``."""
    import torch

    from .data import default_cache_dir
    from .finetune import DEFAULT_OUT, WEIGHTS, card_facts, figures, settings, write_card
    from .sessions import load_material
    from .store import default_model_path, load_model
    from .train import train

    if (args.steps is not None and args.steps < 1) or args.batch < 1 or args.threads < 1:
        raise ConfigError("--steps, --batch and --threads must be positive")
    if args.minutes is not None and args.minutes <= 0:
        raise ConfigError(f"--minutes {args.minutes:g}: give a positive number of minutes")
    if args.limit is not None or args.sources != "all":
        raise ConfigError("--limit and --sources choose corpora; with --sessions the sessions are the material")
    torch.set_num_threads(args.threads)
    console = _console()
    sessions = Path(args.sessions)
    material = load_material(sessions)
    base_path = Path(args.base) if args.base else default_model_path()
    base = load_model(base_path)
    out = Path(args.out) if args.out else default_model_path().with_name(DEFAULT_OUT)
    if out.resolve() == base_path.resolve():
        raise ConfigError(f"--model {out}: that is the model to start from; give another file (default "
                          f"models/{DEFAULT_OUT})")
    st = settings(args.steps, args.batch, args.seed, args.bf16)
    cache = Path(args.cache) if args.cache else default_cache_dir()
    ckpt = Path(args.checkpoints) if args.checkpoints else cache / f"finetune-{out.stem}-s{args.seed}"
    summary = material.summary()
    console.print(f"sessions: {summary['sessions']} in {sessions}, {summary['minutes']:.1f} minutes of your "
                  f"playing, {summary['player_notes']:,} of your notes; kept takes: {len(summary['kept'])}; "
                  f"held out: {len(material.val_names)}; from {base_path}")
    _say_resume(console, ckpt, args.fresh)
    before = figures(base.net, material)
    t0 = time.monotonic()
    with _Bars(console) as bars:
        progress = _progress(bars, "fine-tuning")

        facts = train(material.train, material.val, base.config, st, out, ckpt, resume=not args.fresh,
                      progress=progress, init=base.net.state_dict(), weights=WEIGHTS, data=material.fingerprint,
                      seconds=None if args.minutes is None else 60.0 * args.minutes,
                      meta={"sampling": base.sampling, "size": base.meta.get("size"), "config": base.config.to_dict(),
                            "base": str(base_path), "sessions": summary})
    if facts is None:
        done = torch.load(ckpt / "checkpoint.pt", map_location="cpu", weights_only=False).get("step", 0)
        console.print(f"stopped after {args.minutes:g} minutes at step {done} of {st.steps} (checkpointed in "
                      f"{ckpt}); run the same command again to go on")
        return 0
    tuned = load_model(out)
    after = figures(tuned.net, material)
    card = write_card(out.with_suffix(".md"), card_facts(material, sessions, base_path, before, after, facts,
                                                         base.config.context))
    from .store import update_meta

    update_meta(out, {"finetune": {"before": before, "after": after}})
    b, a = before["player"]["per_note"], after["player"]["per_note"]
    console.print(f"wrote {out} and its card {card}; {facts['steps']} steps, {facts['train_seconds'] / 60:.1f} min "
                  f"of training ({(time.monotonic() - t0) / 60:.1f} min this run); your line on the held-out "
                  f"sessions: {b:.3f} -> {a:.3f} nats per note; play with `improv listen --model {out}`")
    return 0


def cmd_eval(args) -> int:
    import torch

    from .evaluate import evaluate_accompaniment, evaluate_nll, select_ngram, training_bars
    from .store import load_model

    torch.set_num_threads(args.threads)
    console = _console()
    model = load_model(args.model)
    report: dict = {"model": str(model.path), "parameters": sum(p.numel() for p in model.net.parameters()),
                    "split": args.split}
    args.jobs = 1
    if args.pieces < 1 or args.bars < 1:
        raise ConfigError("--pieces and --bars must be positive")
    if args.skip_nll and not args.skip_accompaniment:
        with _Bars(console) as bars:
            report["accompaniment"] = _accompaniment_only(args, model, bars)
        _finish_eval(console, report, args)
        return 0
    from .data import default_cache_dir, load_rendering_cached

    cache = Path(args.cache) if args.cache else default_cache_dir()
    if not args.skip_nll and load_rendering_cached(_sources(args.sources), cache) is None:
        console.print("the likelihood needs every corpus parsed (once: an hour or more on a fresh machine, then "
                      f"cached in {cache}); --skip-nll scores only the accompaniment of --pieces pieces per corpus")
    with _Bars(console) as bars:
        r, sources, _ = _data(args, console, bars)
        train_r, val_r, test_r = r.where(split="train"), r.where(split="val"), r.where(split=args.split)
        if not args.skip_nll:
            ngram, table = select_ngram(train_r, val_r, progress=bars)
            nll = evaluate_nll(model.net, ngram, test_r, progress=bars, chords=args.chords)
            report["nll"] = {**nll.__dict__, "improvement": nll.improvement, "ngram_validation": table}
        if not args.skip_accompaniment:
            bars("indexing training bars", 0, 1)
            seen = training_bars(train_r)
            bars("indexing training bars", 1, 1)
            temperature = args.temperature if args.temperature is not None else model.sampling["temperature"]
            top_p = args.top_p if args.top_p is not None else model.sampling["top_p"]
            report["accompaniment"] = evaluate_accompaniment(model, test_r, seen, args.pieces, args.bars, args.seed,
                                                             temperature=temperature, top_p=top_p,
                                                             keep_key=args.keep_key, harmonize=args.harmonize,
                                                             listen_bars=args.listen_bars,
                                                             progress=bars)
    _finish_eval(console, report, args)
    return 0


def _finish_eval(console, report: dict, args) -> None:
    _print_eval(console, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        console.print(f"figures written to {args.json}")


def _accompaniment_only(args, model, bars) -> dict:
    """--skip-nll: parse only the held-out pieces asked for (cached per file for the next run); the
    training bars (novelty) only where the corpus is cached already."""
    from .data import default_cache_dir, load_rendering_cached, load_split_pieces, render
    from .evaluate import ACCOMPANIMENT_SOURCES, evaluate_accompaniment, training_bars

    cache = Path(args.cache) if args.cache else default_cache_dir()
    sources = [s for s in _sources(args.sources) if s in ACCOMPANIMENT_SOURCES]
    if not sources:
        raise ConfigError(f"--sources {args.sources}: none has an accompaniment to compare with; use "
                          f"{','.join(ACCOMPANIMENT_SOURCES)}")
    test_r = render(load_split_pieces(sources, args.split, args.pieces, cache, progress=bars), bars)
    if test_r.n_frames == 0:
        raise ConfigError(f"no {args.split} pieces found in {', '.join(sources)}")
    whole = load_rendering_cached(_sources(args.sources), cache)
    seen = training_bars(whole.where(split="train")) if whole is not None else None
    temperature = args.temperature if args.temperature is not None else model.sampling["temperature"]
    top_p = args.top_p if args.top_p is not None else model.sampling["top_p"]
    return evaluate_accompaniment(model, test_r, seen, args.pieces, args.bars, args.seed, temperature=temperature,
                                  top_p=top_p, keep_key=args.keep_key, harmonize=args.harmonize,
                                  listen_bars=args.listen_bars, progress=bars)


def _print_eval(console, report: dict) -> None:
    from rich.table import Table

    if "nll" in report:
        n = report["nll"]
        t = Table(title=f"held-out NLL (nats), {n['tokens']:,} tokens, {n['events']:,} note events")
        for c in ("", "model", f"n-gram ({n['ngram_mode']}, order {n['ngram_order']})", "model vs n-gram"):
            t.add_column(c)
        t.add_row("all, per token", f"{n['model_per_token']:.4f}", f"{n['ngram_per_token']:.4f}",
                  f"{-100 * n['improvement']:+.1f}%")
        t.add_row("all, per note event", f"{n['model_per_event']:.3f}", f"{n['ngram_per_event']:.3f}", "")
        for src, s in n["per_source"].items():
            t.add_row(src, f"{s['model_per_token']:.4f}", f"{s['ngram_per_token']:.4f}",
                      f"{-100 * s['improvement']:+.1f}%")
        console.print(t)
    if "accompaniment" in report:
        a = report["accompaniment"]
        t = Table(title=f"accompaniment under held-out lead lines ({a['pieces']} pieces, <= {a['max_bars']} bars)")
        for c in ("", "generated", "real", "difference"):
            t.add_column(c)
        g, r = a["generated"], a["real"]
        for key in ("in_scale", "strong_beat_consonance", "strong_beat_consonance_heard", "range_adherence",
                    "monophony", "repetition", "novelty"):
            if g[key] is None or r[key] is None:
                t.add_row(key.replace("_", " "), "not measured", "", "(the training corpus is not parsed yet)")
                continue
            diff = f"{100 * (g[key] - r[key]):+.1f} pp" if key not in ("range_adherence", "monophony") else ""
            t.add_row(key.replace("_", " "), f"{100 * g[key]:.1f}%", f"{100 * r[key]:.1f}%", diff)
        t.add_row("notes", str(g["notes"]), str(r["notes"]), "")
        console.print(t)


# ------------------------------------------------------------------ continue / generate


def _voices(text: str) -> tuple[str, ...]:
    from .offline import parse_voices

    try:
        return parse_voices(text)
    except ValueError as e:
        raise ConfigError(f"--voices {text!r}: {e}") from None


def _write_json(path: Path, notes, velocities, seconds_per_unit: float, seed: int, bpm: float | None,
                drums=None) -> None:
    """The notes in the HTTP API's ``notes`` form, beside the MIDI file."""
    from .offline import notes_to_json

    head = json.dumps({"seed": seed, "bpm": bpm})[:-1]
    rows = ",\n  ".join(json.dumps(n) for n in notes_to_json(notes, velocities, seconds_per_unit, drums))
    path.write_text(f'{head}, "notes": [\n  {rows}\n]}}\n')  # one note a line


def cmd_continue(args) -> int:
    import mido

    from .encoding import read_midi, write_midi
    from .offline import carry_velocities, generate_notes
    from .store import load_model

    _check_gen_args(args)
    voices = _voices(args.voices)
    for f in args.files:
        if not Path(f).exists():
            raise ConfigError(f"{f}: no such file")
    model = load_model(args.model)
    console = _console()
    for f in args.files:
        path = Path(f)
        try:
            piece = read_midi(path)
        except (OSError, ValueError, EOFError, KeyError, IndexError, mido.KeySignatureError) as e:
            raise ConfigError(f"{path}: not a readable MIDI file ({e}); give a standard MIDI file") from None
        spb = 60.0 / args.bpm if args.bpm else piece.seconds_per_beat
        metered = not args.unmetered
        prompt = piece.notes(metered)
        drums = piece.drums.copy()
        if not metered:
            drums[:, 1:3] *= spb
            if args.bpm:
                prompt = piece.notes_beats.copy()
                prompt[:, 2:] *= spb
        out_dir = Path(args.out) if args.out else path.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        if not len(prompt):
            console.print(f"{path}: no pitched notes (drums only or empty); the band plays from its first beat",
                          soft_wrap=True)
        for k in range(args.variations):
            notes = generate_notes(model, prompt, metered=metered, beats_per_bar=piece.beats_per_bar,
                                   seconds_per_beat=spb, seconds=args.seconds, voices=voices, seed=args.seed + k,
                                   temperature=args.temperature, top_p=args.top_p)
            unit = 0.25 if metered else 0.125
            vel = carry_velocities(notes, prompt, piece.velocities, unit)
            out = out_dir / f"{path.stem}-cont{k + 1}.mid"
            write_midi(out, notes, metered, spb, piece.beats_per_bar, velocity=vel, drums=drums)
            line = f"wrote {out} ({len(notes) - len(prompt)} new notes, seed {args.seed + k})"
            if args.json:
                _write_json(out.with_suffix(".json"), notes, vel, spb if metered else 1.0, args.seed + k,
                            60.0 / spb, drums)
                line += f" and {out.with_suffix('.json').name}"
            console.print(line, soft_wrap=True)
    return 0


def cmd_generate(args) -> int:
    import numpy as np

    from .encoding import write_midi
    from .offline import generate_notes
    from .store import load_model

    _check_gen_args(args)
    voices = _voices(args.voices)
    model = load_model(args.model)
    console = _console()
    spb = 60.0 / (args.bpm or 100.0)
    out_dir = Path(args.out) if args.out else Path(".")
    out_dir.mkdir(parents=True, exist_ok=True)
    for k in range(args.variations):
        notes = generate_notes(model, np.zeros((0, 4)), metered=not args.unmetered, beats_per_bar=4.0,
                               seconds_per_beat=spb, seconds=args.seconds, voices=voices, seed=args.seed + k,
                               temperature=args.temperature, top_p=args.top_p)
        out = out_dir / f"generated-{k + 1}.mid"
        write_midi(out, notes, not args.unmetered, spb, 4.0)
        line = f"wrote {out} ({len(notes)} notes, seed {args.seed + k})"
        if args.json:
            _write_json(out.with_suffix(".json"), notes, 80, spb if not args.unmetered else 1.0, args.seed + k,
                        60.0 / spb)
            line += f" and {out.with_suffix('.json').name}"
        console.print(line, soft_wrap=True)
    return 0


def _check_gen_args(args) -> None:
    if args.seconds <= 0 or args.seconds > 3600:
        raise ConfigError(f"--seconds {args.seconds}: between 0 and 3600")
    if args.variations < 1 or args.variations > 100:
        raise ConfigError(f"--variations {args.variations}: between 1 and 100")
    if args.bpm is not None and not 20 <= args.bpm <= 400:
        raise ConfigError(f"--tempo {args.bpm:g}: between 20 and 400")
    if args.temperature is not None and args.temperature < 0:
        raise ConfigError("--temperature must be >= 0")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ConfigError("--top-p must be in (0, 1]")
