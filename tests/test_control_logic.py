"""Switch logic (press, long press, toggle), keys, OSC addresses and MIDI learn, on a fake clock.

Times are exact: the logic takes ``now`` as an argument, so commands must carry the
time of the message that caused them (long presses: press time + long-press time).
"""

from __future__ import annotations

import mido
import pytest

from improv.control.keyboard import KeyLogic
from improv.control.learn import SKIP, Learned, ScriptedFeed, apply_learned, learn_switch
from improv.control.mapping import DEFAULT_MAPPING_TOML, parse_mapping
from improv.control.osc import osc_command, parse_osc_address
from improv.control.switches import SwitchLogic
from improv.errors import ConfigError
from improv.events import Command

MAP = parse_mapping("""
[controller]
long_press_ms = 500
[program]
4 = "all: take over"
[cc]
80 = "all: stop"
82 = { press = "bass: busier", long = "bass: simpler", release = "all: go" }
[cc.86]
mode = "toggle"
on = "high: take over 0.7"
off = "high: accompany"
[cc.87]
mode = "toggle"
on = "mid: fight"
off = "mid: make room"
on_value = 100
off_value = 1
[note]
36 = { press = "panic", long = "all: stop", long_press_ms = 1000 }
""")


def cc(n, v, ch=0):
    return mido.Message("control_change", control=n, value=v, channel=ch)


def label(cmds):
    return [(round(c.time, 6), c.target, c.command, c.value) for c in cmds]


def test_momentary_without_long_acts_at_once():
    logic = SwitchLogic(MAP)
    assert label(logic.message(cc(80, 127), 1.0)) == [(1.0, "all", "stop", None)]
    assert logic.message(cc(80, 127), 1.1) == []  # pressed again while held: ignored
    assert logic.message(cc(80, 0), 1.2) == []
    assert label(logic.message(cc(80, 127), 1.3)) == [(1.3, "all", "stop", None)]
    assert logic.next_deadline() is None


def test_short_press_gives_press_on_release():
    logic = SwitchLogic(MAP)
    assert logic.message(cc(82, 127), 2.0) == []
    assert logic.next_deadline() == pytest.approx(2.5)
    assert logic.poll(2.499) == []
    assert label(logic.message(cc(82, 0), 2.2)) == [(2.2, "bass", "busier", None), (2.2, "all", "go", None)]
    assert logic.next_deadline() is None and logic.poll(3.0) == []


def test_long_press_fires_at_the_deadline_and_not_again_on_release():
    logic = SwitchLogic(MAP)
    logic.message(cc(82, 127), 2.0)
    assert label(logic.poll(2.5)) == [(2.5, "bass", "simpler", None)]
    assert logic.poll(2.7) == [] and logic.next_deadline() is None
    assert label(logic.message(cc(82, 0), 3.0)) == [(3.0, "all", "go", None)]


def test_late_poll_still_gives_long_stamped_at_the_deadline():
    logic = SwitchLogic(MAP)
    logic.message(cc(82, 127), 2.0)
    assert label(logic.message(cc(82, 0), 2.8)) == [(2.5, "bass", "simpler", None), (2.8, "all", "go", None)]


def test_per_switch_long_press_time_and_notes():
    logic = SwitchLogic(MAP)
    assert logic.message(mido.Message("note_on", note=36, velocity=90), 5.0) == []
    assert logic.poll(5.9) == []
    assert label(logic.message(mido.Message("note_on", note=36, velocity=0), 5.95)) == [(5.95, "all", "panic", None)]
    logic.message(mido.Message("note_on", note=36, velocity=90), 7.0)
    assert label(logic.poll(8.0)) == [(8.0, "all", "stop", None)]
    assert logic.message(mido.Message("note_off", note=36), 8.2) == []
    assert logic.message(mido.Message("note_on", note=37, velocity=90), 9.0) == []  # not mapped


def test_toggle_on_and_off():
    logic = SwitchLogic(MAP)
    assert label(logic.message(cc(86, 127), 1.0)) == [(1.0, "high", "take-over", 0.7)]
    assert label(logic.message(cc(86, 0), 2.0)) == [(2.0, "high", "accompany", "harmonic")]
    assert label(logic.message(cc(86, 64), 3.0)) == [(3.0, "high", "take-over", 0.7)]  # any value but off
    assert label(logic.message(cc(87, 100), 4.0)) == [(4.0, "mid", "fight", 0.5)]
    assert label(logic.message(cc(87, 1), 5.0)) == [(5.0, "mid", "make-room", None)]
    assert logic.message(cc(87, 0), 6.0) == [] and logic.message(cc(87, 127), 6.0) == []  # neither value


def test_program_change_channel_filter_and_reset():
    logic = SwitchLogic(MAP)
    assert label(logic.message(mido.Message("program_change", program=4), 1.0)) == [(1.0, "all", "take-over", 0.3)]
    assert logic.message(mido.Message("program_change", program=5), 1.0) == []
    assert logic.message(mido.Message("clock"), 1.0) == []
    one = SwitchLogic(parse_mapping('[controller]\nchannel = 3\n[cc]\n80 = "all: stop"\n'))
    assert one.message(cc(80, 127, ch=0), 1.0) == []
    assert len(one.message(cc(80, 127, ch=2), 1.0)) == 1
    logic.message(cc(82, 127), 2.0)
    logic.reset()  # controller lost while held: no long press, no release command
    assert logic.poll(5.0) == [] and logic.message(cc(82, 0), 5.0) == []


def test_keys_with_band_selection():
    keys = KeyLogic(parse_mapping(DEFAULT_MAPPING_TOML))
    cmds, _ = keys.key("+", 1.0)
    assert label(cmds) == [(1.0, "all", "busier", None)]
    cmds, line = keys.key("1", 2.0)
    assert cmds == [] and "bass" in line
    assert label(keys.key("r", 3.0)[0]) == [(3.0, "bass", "make-room", None)]
    assert label(keys.key("S", 4.0)[0]) == [(4.0, "all", "stop", None)]      # names its band
    assert label(keys.key(" ", 5.0)[0]) == [(5.0, "all", "tap", None)]       # global
    assert label(keys.key("L", 6.0)[0]) == [(6.0, "bass", "lead", ("busy", "contrapuntal"))]
    keys.key("0", 7.0)
    assert label(keys.key("s", 8.0)[0]) == [(8.0, "all", "stop", None)]
    cmds, line = keys.key("z", 9.0)
    assert cmds == [] and "does nothing" in line
    assert "space=tap" in keys.key("?", 9.0)[1]


OSC_GOOD = [
    ("/improv/bass/make-room", [], ("bass", "make-room", None)),
    ("/improv/high/take_over", [0.7], ("high", "take-over", 0.7)),
    ("/improv/high/take-over/0.7", [1.0], ("high", "take-over", 0.7)),
    ("/improv/mid/accompany", ["contrapuntal"], ("mid", "accompany", "contrapuntal")),
    ("/improv/high/accompany/contrapuntal", [], ("high", "accompany", "contrapuntal")),
    ("/improv/all/lead", ["busy", "harmonic"], ("all", "lead", ("busy", "harmonic"))),
    ("/improv/panic", [], ("all", "panic", None)),
    ("/improv/tap", [1], ("all", "tap", None)),
    ("/improv/stop", [], ("all", "stop", None)),
    ("/improv/player", ["mid"], ("all", "player", "mid")),
    ("/IMPROV/All/More_Chaotic", [], ("all", "more-chaotic", None)),
]


@pytest.mark.parametrize("address,args,want", OSC_GOOD, ids=[g[0] for g in OSC_GOOD])
def test_osc_addresses(address, args, want):
    cmd = osc_command(address, args, 3.5)
    assert (cmd.time, cmd.target, cmd.command, cmd.value) == (3.5, *want)


def test_osc_button_release_gives_nothing():
    assert osc_command("/improv/all/stop", [0.0], 1.0) is None
    assert osc_command("/improv/high/take-over/0.7", [0], 1.0) is None


@pytest.mark.parametrize("address,args,words", [
    ("/improv/bas/stop", [], "unknown band 'bas'"),
    ("/improv/all/stpo", [], "unknown command"),
    ("/other/all/stop", [], "not an improv address"),
    ("/improv", [], "no command"),
    ("/improv/high/take_over", [1.5], "out of range"),
    ("/improv/high/stop", ["now"], "takes no value"),
    ("/improv/mid/accompany", ["loud"], "not one of harmonic, contrapuntal"),
])
def test_osc_bad_messages(address, args, words):
    with pytest.raises(ConfigError, match=words) as e:
        osc_command(address, args, 0.0)
    assert str(e.value).startswith(f"OSC {address}")


def test_osc_address_option():
    assert parse_osc_address("9000") == ("127.0.0.1", 9000)  # this machine only unless asked
    assert parse_osc_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_osc_address("127.0.0.1:9001") == ("127.0.0.1", 9001)
    for bad in ("x", "70000", "host:"):
        with pytest.raises(ConfigError, match="--osc"):
            parse_osc_address(bad)


# ------------------------------------------------------------------ learn


def pc(n):
    return mido.Message("program_change", program=n)


def learn(items, until=100.0):
    feed = ScriptedFeed(items)
    return learn_switch(feed, until, long_s=0.6, window=2.0), feed


def test_learn_program_change_and_several_messages_of_one_press():
    got, feed = learn([(1.0, pc(3)), (1.01, cc(20, 127)), (1.5, pc(4))])
    assert got == Learned("program", 3, "momentary", "press")
    got2 = learn_switch(feed, 100.0, 0.6, 2.0)
    assert got2 == Learned("program", 4, "momentary", "press")  # the CC of the same press was left out


def test_learn_momentary_short_and_long():
    got, _ = learn([(1.0, cc(90, 127)), (1.15, cc(90, 0))])
    assert (got.kind, got.number, got.mode, got.slot) == ("cc", 90, "momentary", "press")
    assert got.held == pytest.approx(0.15)
    got, _ = learn([(1.0, cc(90, 127)), (1.9, cc(90, 0))])
    assert got.slot == "long" and got.held == pytest.approx(0.9)


def test_learn_toggle_when_no_release_comes():
    got, feed = learn([(1.0, cc(91, 127)), (1.5, cc(30, 127)), (1.6, cc(30, 0)), (3.5, cc(91, 0))])
    assert got == Learned("cc", 91, "toggle", "on")
    assert feed.now >= 3.0  # it waited the whole window for a release
    nxt = learn_switch(feed, 100.0, 0.6, 2.0)  # the other switch, pressed meanwhile, is next
    assert (nxt.number, nxt.mode, nxt.slot) == (30, "momentary", "press")
    last = learn_switch(feed, 100.0, 0.6, 2.0)
    assert last == Learned("cc", 91, "toggle", "off")


def test_learn_note_expression_pedal_timeout_and_skip():
    got, _ = learn([(1.0, mido.Message("note_on", note=36, velocity=80)), (1.1, mido.Message("note_off", note=36))])
    assert got == Learned("note", 36, "momentary", "press", pytest.approx(0.1))
    pedal = [(1.0 + i * 0.02, cc(11, 10 + i)) for i in range(20)] + [(2.0, pc(2))]
    got, _ = learn(pedal)
    assert got == Learned("program", 2, "momentary", "press")
    got, _ = learn([(5.0, pc(1))], until=4.0)
    assert got is None
    feed = ScriptedFeed([])
    feed._items.append(SKIP)
    assert learn_switch(feed, None, 0.6, 2.0) == SKIP


def test_apply_learned_merges_and_reports_what_it_replaced():
    m = parse_mapping('[cc]\n82 = { press = "all: busier", long = "all: simpler" }\n[program]\n1 = "all: go"\n')
    m2, was = apply_learned(m, Learned("cc", 82, "momentary", "long"), Command(9.0, "bass", "fight", 0.5))
    sw = m2.switch("cc", 82)
    assert sw.press == Command(0.0, "all", "busier") and sw.long == Command(0.0, "bass", "fight", 0.5)
    assert was == "all: simpler" and m2.switch("program", 1) is not None
    m3, was = apply_learned(m2, Learned("cc", 82, "toggle", "on"), Command(0.0, "all", "go"))
    assert m3.switch("cc", 82).mode == "toggle" and m3.switch("cc", 82).press is None
    assert was == "all: busier, bass: fight 0.5"


def test_learn_picks_the_only_controller_or_asks():
    from improv.control.learn import choose_controller
    from improv.errors import MidiError

    ports = ["Midi Through:Midi Through Port-0 14:0", "FCB1010:FCB1010 MIDI 1 20:0"]
    assert choose_controller(ports, None) == "FCB1010:FCB1010 MIDI 1 20:0"
    assert choose_controller(ports, "fcb") == "fcb"
    with pytest.raises(MidiError, match="--controller PORT .* MIDI input ports: Midi Through.*; FCB1010.*; MC6"):
        choose_controller(ports + ["MC6:MC6 MIDI 1 24:0"], None)
