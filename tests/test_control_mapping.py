"""The mapping file: the default, reading back what is written, and errors naming file, line and key."""

from __future__ import annotations

import re

import pytest

from improv.cli import main
from improv.control.mapping import (BUILTIN, DEFAULT_MAPPING_TOML, load_mapping, mapping_to_toml, parse_mapping,
                                    write_mapping)
from improv.errors import ConfigError
from improv.events import Command


def test_default_mapping_covers_a_six_switch_controller():
    m = parse_mapping(DEFAULT_MAPPING_TOML, BUILTIN)
    for n in range(80, 86):
        assert m.switch("cc", n) is not None and m.switch("cc", n).press is not None
    for n in range(6):
        assert m.switch("program", n) is not None
    assert m.switch("cc", 80).press == Command(0.0, "all", "stop")
    assert m.switch("cc", 80).long is None  # stop acts on press, never waits for a release
    assert m.switch("cc", 85).press.command == "tap" and m.switch("cc", 85).long is None
    assert m.switch("cc", 82).long == Command(0.0, "all", "simpler")
    assert m.long_press_ms == 600 and m.channel is None
    assert m.keys["s"].select is None and not m.keys["s"].targeted
    assert m.keys["1"].select == "bass" and m.keys[" "].command.command == "tap"


def test_written_mapping_reads_back_the_same(tmp_path):
    text = DEFAULT_MAPPING_TOML + '\n[cc.86]\nmode = "toggle"\non = "high: take over 0.7"\noff = "high: accompany"\n' \
                                  'on_value = 100\noff_value = 1\n[note]\n36 = { press = "panic", release = "all: go", ' \
                                  'long_press_ms = 900 }\n'
    m = parse_mapping(text.replace("# channel = 1 ", "channel = 2 "))
    path = tmp_path / "sub" / "map.toml"
    write_mapping(m, path)
    back = load_mapping(path)
    assert back.switches == m.switches and back.keys == m.keys
    assert back.channel == 2 and back.long_press_ms == m.long_press_ms
    assert back.switch("cc", 86).on_value == 100 and back.switch("cc", 86).off_value == 1
    assert back.switch("note", 36).long_press_ms == 900
    assert mapping_to_toml(back) == path.read_text()


BAD = [
    # (file text, line, key named, words of the remedy)
    ('[cc]\n80 = "all: stop"\n81 = "all: stpo"\n', 3, "[cc] 81", "unknown command 'stpo'"),
    ('[cc]\n\n82 = { press = "bas: busier" }\n', 3, "[cc.82] press", "unknown band 'bas'"),
    ('[cc.81]\nmode = "toggle"\non = "all: go"\npress = "all: stop"\n', 4, "[cc.81] press", "toggle takes on, off"),
    ('[controller]\nlong_press_ms = 600\nchannel = 17\n', 3, "[controller] channel", "1 to 16"),
    ('[controller]\nlong_press_ms = 20\n', 2, "[controller] long_press_ms", "100 to 5000"),
    ('[program]\n3 = { press = "all: stop", long = "all: go" }\n', 2, "[program.3] long", "no release"),
    ('[cc]\n200 = "all: stop"\n', 2, "[cc] 200", "give 0 to 127"),
    ('[note]\nC4 = "panic"\n', 2, "[note] C4", "give 0 to 127"),
    ('[keys]\ns = "stop"\nspace = "select everyone"\n', 3, "[keys] space", "select and one of"),
    ('[keys]\nctrl-x = "stop"\n', 2, "[keys] ctrl-x", "one character"),
    ('[cc]\n80 = "high: take over 1.5"\n', 2, "[cc] 80", "out of range"),
    ('[cc.81]\nmode = "sticky"\non = "all: go"\n', 2, "[cc.81] mode", '"momentary" or "toggle"'),
    ('[pedals]\n1 = "all: go"\n', 1, "[pedals]", "unknown section"),
    ('\n[cc]\n80 = 3\n', 3, "[cc] 80", "give a command string"),
    ('[cc.84]\nlong_press_ms = 700\n', 1, "[cc] 84", "no command given"),
]


@pytest.mark.parametrize("text,line,key,remedy", BAD, ids=[b[2] for b in BAD])
def test_errors_name_file_line_and_key(tmp_path, text, line, key, remedy):
    path = tmp_path / "pedal.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_mapping(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path} line {line}, {key}: "), msg
    assert remedy in msg


def test_toml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[cc]\n80 = "all: stop"\n81 = all: go\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path} line 3: not valid TOML")):
        load_mapping(path)


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="no such file; write one with `improv mapping --write-default"):
        load_mapping(tmp_path / "nope.toml")


def test_default_path_used_when_present(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_mapping(None).source == BUILTIN
    (tmp_path / "improv").mkdir()
    (tmp_path / "improv" / "mapping.toml").write_text('[program]\n0 = "panic"\n')
    m = load_mapping(None)
    assert m.source.endswith("mapping.toml") and m.switch("program", 0).press.command == "panic"
    assert m.switch("cc", 80) is None


def test_mapping_command_writes_and_shows(tmp_path, capsys):
    path = tmp_path / "m.toml"
    assert main(["mapping", "--write-default", str(path)]) == 0
    assert path.read_text() == DEFAULT_MAPPING_TOML
    assert main(["mapping", "--write-default", str(path)]) == 2  # exists: needs --force
    assert "add --force" in capsys.readouterr().err
    assert main(["mapping", "--mapping", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CC 82 momentary  press: all: busier; long: all: simpler" in out
    path.write_text('[cc]\n80 = "all: sotp"\n')
    assert main(["mapping", "--mapping", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"improv: {path} line 2, [cc] 80: unknown command") and err.count("\n") == 1


def test_learn_rejects_unknown_commands_in_one_line(capsys):
    assert main(["learn", "bas: stop"]) == 2
    err = capsys.readouterr().err
    assert err == "improv: unknown band 'bas' in 'bas: stop': use one of bass, mid, high, drums, all\n"
