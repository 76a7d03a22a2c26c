"""The transformer: cached inference equals recomputation; a tiny model learns; training resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from improv.model.data import load_pieces, render
from improv.model.encoding import N_VOICES, VOCAB
from improv.model.net import Cache, FrameNet, ModelConfig, input_indices
from improv.model.train import TrainSettings, Windows, loss_fn, make_batch, train

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, head_hidden=32, context=48, dropout=0.0)


def _frames(T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(0, VOCAB, (1, T, N_VOICES), generator=g)
    pos = torch.randint(0, 49, (1, T), generator=g)
    ctrl = torch.randint(-1, 3, (1, T, N_VOICES, 3), generator=g)
    return input_indices(tok, pos, ctrl)[0], tok[0]


def test_cached_steps_equal_full_recomputation():
    torch.manual_seed(0)
    net = FrameNet(TINY).eval()
    idx, _ = _frames(40)
    with torch.no_grad():
        full = net.trunk(idx[None])[0]
    cache = Cache(net)
    parts = [cache.feed(idx[:7])]  # a batch of frames, then one at a time
    parts += [cache.feed(idx[t:t + 1]) for t in range(7, 40)]
    torch.testing.assert_close(torch.cat(parts), full, atol=1e-5, rtol=1e-5)


def test_cache_truncate_and_refeed():
    torch.manual_seed(1)
    net = FrameNet(TINY).eval()
    idx, _ = _frames(30, seed=1)
    other, _ = _frames(30, seed=2)
    cache = Cache(net)
    cache.feed(idx[:20])
    cache.feed(other[20:25])  # speculative frames
    cache.truncate(20)
    h = cache.feed(idx[20:30])
    with torch.no_grad():
        full = net.trunk(idx[None])[0]
    torch.testing.assert_close(h, full[20:30], atol=1e-5, rtol=1e-5)


def test_sliding_cache_stays_close_to_recomputation_of_the_kept_window():
    """Past the context the oldest frames slide out of attention. Deeper layers' cached keys
    still carry what they saw before (streaming / Transformer-XL style), so the state is close
    to, not equal to, a recomputation over the kept frames alone."""
    torch.manual_seed(2)
    net = FrameNet(TINY).eval()
    idx, _ = _frames(130, seed=3)
    cache = Cache(net)
    for t in range(130):
        h = cache.feed(idx[t:t + 1])
    assert cache.length <= TINY.context and cache.end == 130 and cache.first > 0
    kept = idx[cache.first:cache.end]
    with torch.no_grad():
        full = net.trunk(kept[None])[0]
    assert (h[-1] - full[-1]).norm() < 0.05 * full[-1].norm()


def test_heads_match_incremental_head():
    torch.manual_seed(3)
    net = FrameNet(TINY).eval()
    idx, tok = _frames(10, seed=4)
    with torch.no_grad():
        h = net.trunk(idx[None])[0]
        logits = net.heads(h[:-1], tok[1:])  # [9, 4, VOCAB]
        cond = torch.zeros(TINY.d_model)
        for v in range(N_VOICES):
            torch.testing.assert_close(net.head(v, h[4], cond), logits[4, v], atol=1e-5, rtol=1e-5)
            if v < N_VOICES - 1:
                cond = cond + net.cond_vector(v, int(tok[5, v]))


@pytest.fixture(scope="module")
def chorales():
    """Six Bach chorales from music21's bundled corpus, rendered."""
    pieces = load_pieces(["chorales"], limit=6)
    assert len(pieces) >= 4, "music21's corpus should give at least 4 four-part chorales out of 6 files"
    return render(pieces)


def test_tiny_model_lowers_its_loss(chorales):
    torch.manual_seed(0)
    net = FrameNet(TINY)
    st = TrainSettings(steps=60, batch=8, lr=3e-3, warmup=5)
    w = Windows(chorales, TINY.context + 1)
    fixed = make_batch(w, np.random.default_rng(123), 16, st, train=False)
    net.eval()
    with torch.no_grad():
        before = loss_fn(net, *fixed).item()
    assert before == pytest.approx(np.log(VOCAB), rel=0.05)  # untrained: about uniform
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=st.lr)
    for step in range(st.steps):
        loss = loss_fn(net, *make_batch(w, np.random.default_rng([0, step]), st.batch, st))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        after = loss_fn(net, *fixed).item()
    assert after < 0.6 * before, (before, after)


def test_training_resumes_exactly(chorales, tmp_path):
    st = TrainSettings(steps=6, batch=4, ckpt_every=3, eval_every=3, val_windows=16, bf16=False)
    a = train(chorales, chorales, TINY, st, tmp_path / "a.pt", tmp_path / "ck_a", resume=False)
    assert train(chorales, chorales, TINY, st, tmp_path / "b.pt", tmp_path / "ck_b", stop_after=3) is None
    assert not (tmp_path / "b.pt").exists()
    b = train(chorales, chorales, TINY, st, tmp_path / "b.pt", tmp_path / "ck_b", resume=True)
    assert a["history"][-1]["val"] == pytest.approx(b["history"][-1]["val"], abs=1e-6)
    wa = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=0, rtol=0)


def test_numpy_input_rows_equal_torch_ones():
    from improv.model.net import input_rows_np

    g = np.random.default_rng(0)
    tok = g.integers(0, VOCAB, (9, N_VOICES))
    pos = g.integers(0, 49, 9)
    ctrl = g.integers(-1, 3, (N_VOICES, 3))
    want = input_indices(torch.from_numpy(tok), torch.from_numpy(pos),
                         torch.from_numpy(np.broadcast_to(ctrl, (9, N_VOICES, 3)).copy()))
    np.testing.assert_array_equal(input_rows_np(tok, pos, ctrl), want.numpy())


def test_numpy_heads_equal_torch_heads():
    from improv.model.net import NumpyHeads

    torch.manual_seed(4)
    net = FrameNet(TINY).eval()
    heads = NumpyHeads(net)
    g = torch.Generator().manual_seed(0)
    for v in range(N_VOICES):
        h, cond = torch.randn(TINY.d_model, generator=g), torch.randn(TINY.d_model, generator=g)
        with torch.no_grad():
            want = net.head(v, h, cond).numpy()
        np.testing.assert_allclose(heads(v, h.numpy(), cond.numpy()), want, rtol=1e-4, atol=1e-4)
        if v < N_VOICES - 1:  # the lead comes last: nothing is conditioned on it
            np.testing.assert_array_equal(heads.cond_vector(v, 7), net.cond_vector(v, 7).detach().numpy())


# ------------------------------------------------------------------ the chord control

CHORDED = ModelConfig(**{**TINY.to_dict(), "chords": True})


def test_a_model_file_from_before_the_chord_control_loads_and_runs_unchanged(tmp_path):
    """An old model's config has no ``chords`` key: it loads as a model without the control,
    its input table and rows as before; widened (zero chord rows) it computes the same
    logits whatever chord it is given."""
    from improv.model.net import N_INPUT_ROWS, N_INPUT_SLOTS, widen_for_chords
    from improv.model.store import load_model, save_model

    torch.manual_seed(3)
    old = FrameNet(TINY).eval()
    path = save_model(tmp_path / "old.pt", old)
    blob = torch.load(path, weights_only=True)
    blob["config"].pop("chords")  # as written before the control existed
    torch.save(blob, path)
    loaded = load_model(path).net
    assert not loaded.cfg.chords and loaded.inp.weight.shape[0] == N_INPUT_ROWS
    idx, tok = _frames(30)
    assert idx.shape[-1] == N_INPUT_SLOTS
    wide = FrameNet(CHORDED).eval()
    wide.load_state_dict(widen_for_chords(loaded.state_dict()))
    chords = torch.randint(0, 25, (30,), generator=torch.Generator().manual_seed(1))
    idx_c = torch.cat([idx, (N_INPUT_ROWS + chords)[:, None]], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(wide(idx_c[None], tok[None]), loaded(idx[None], tok[None]), atol=1e-5, rtol=0)
    # seeded for fine-tuning (triad rows from the pitch-class rows): unchanged with no chord
    # given, changed with one
    wide.load_state_dict(widen_for_chords(loaded.state_dict(), seeded=True))
    unknown = torch.cat([idx, torch.full((30, 1), N_INPUT_ROWS + 24)], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(wide(unknown[None], tok[None]), loaded(idx[None], tok[None]), atol=1e-5, rtol=0)
        assert (wide(idx_c[None], tok[None]) - loaded(idx[None], tok[None])).abs().max() > 1e-3


def test_numpy_input_rows_with_chords_equal_torch_ones():
    from improv.model.net import input_rows_np

    g = np.random.default_rng(1)
    tok = g.integers(0, VOCAB, (7, N_VOICES))
    pos = g.integers(0, 49, 7)
    ctrl = g.integers(-1, 3, (N_VOICES, 3))
    ch = g.integers(0, 25, 7)
    want = input_indices(torch.from_numpy(tok), torch.from_numpy(pos),
                         torch.from_numpy(np.broadcast_to(ctrl, (7, N_VOICES, 3)).copy()), torch.from_numpy(ch))
    np.testing.assert_array_equal(input_rows_np(tok, pos, ctrl, ch), want.numpy())
    assert len(set(want[:, -1].tolist())) == len(set(ch.tolist()))  # one row per chord class


def test_chords_found_in_block_chords():
    from improv.model.encoding import CHORD_NAMES, triad_spans

    # bar 1 C major (C E G), bar 2 A minor with the root in the bass, bar 3 an F major arpeggio
    rows = [(0, 48, 0, 4), (1, 64, 0, 4), (2, 67, 0, 4),
            (0, 45, 4, 8), (1, 60, 4, 8), (2, 64, 4, 8),
            (0, 41, 8, 9), (1, 45, 9, 10), (2, 48, 10, 11), (2, 53, 11, 12)]
    spans = triad_spans(np.array(rows, dtype=float), (0, 1, 2), step=4.0)
    assert [CHORD_NAMES[int(k)] for k in spans[:, 2]] == ["C", "Am", "F"]
    np.testing.assert_allclose(spans[:, :2], [[0, 4], [4, 8], [8, 12]])
    # a cluster that is no triad is left unknown
    assert len(triad_spans(np.array([(0, 60, 0, 1), (1, 61, 0, 1), (2, 62, 0, 1), (0, 63, 0, 1)], float),
                           (0, 1, 2))) == 0


def _chorded_rendering():
    """Two synthetic POP909-like pieces whose bass plays the root of the annotated chord."""
    from improv.model.data import Piece, render

    pieces = []
    for n, roots in enumerate(([0, 5, 7, 0] * 6, [9, 2, 4, 9] * 6)):
        rows, spans = [], []
        for bar, r in enumerate(roots):
            rows.append((0, 36 + r, 4 * bar, 4 * bar + 4))
            rows += [(3, 60 + r + d, 4 * bar + i, 4 * bar + i + 1) for i, d in enumerate((0, 4, 7, 12))]
            spans.append((4 * bar, 4 * bar + 4, r + (12 if n == 1 and r in (9, 2, 4) else 0)))
        spans_a = np.array(spans, dtype=float)
        pieces.append(Piece(id=f"pop909/t{n}", source="pop909", group=f"pop909/t{n}", metered=True,
                            beats_per_bar=4.0, bar_phase=0.0, notes=np.array(rows, dtype=float), chords=spans_a))
    return render(pieces)


def test_training_windows_carry_the_next_frames_chord_transposed_with_the_notes_and_dropped():
    from improv.model.encoding import CHORD_UNKNOWN, PITCH_LO
    from improv.model.net import N_INPUT_ROWS

    r = _chorded_rendering()
    assert r.chords is not None and (r.chords < CHORD_UNKNOWN).mean() > 0.8
    w = Windows(r, CHORDED.context + 1)
    st = TrainSettings(chord_drop=0.0, chord_span_drop=0.0, swap_prob=0.0, history_noise_prob=0.0)
    idx, target, _ = make_batch(w, np.random.default_rng(5), 24, st, chords=True)
    chord_in = idx[..., -1] - N_INPUT_ROWS                 # [B, L]: the chord of the frame predicted
    bass = target[..., 0]                                    # [B, L]: the frame predicted
    onsets = (bass >= 2) & (chord_in < CHORD_UNKNOWN)
    assert onsets.sum() > 20
    pcs = (bass[onsets] - 2 + PITCH_LO) % 12
    # the bass sounds the root of the chord given for its frame, in every transposition
    np.testing.assert_array_equal(pcs.numpy(), (chord_in[onsets] % 12).numpy())
    # chord dropout: every chord unknown in ~chord_drop of the windows, a span in others
    st = TrainSettings(chord_drop=0.3, chord_span_drop=0.5)
    idx, _, mask = make_batch(w, np.random.default_rng(6), 200, st, chords=True)
    mask = mask.any(-1)                                      # [B, L]: frames learnt from (not padding)
    known = (idx[..., -1] - N_INPUT_ROWS) < CHORD_UNKNOWN
    none = (~known | ~mask).all(-1).float().mean().item()
    part = (~known & mask).any(-1) & (known.any(-1))
    assert 0.2 <= none <= 0.4, none
    assert 0.2 <= part.float().mean().item() <= 0.5
    # without the control, the rows are as before (no chord slot)
    from improv.model.net import N_INPUT_SLOTS
    assert make_batch(w, np.random.default_rng(6), 2, st)[0].shape[-1] == N_INPUT_SLOTS

