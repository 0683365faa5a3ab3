"""docs/labels.md runs: its example files are written out and its Python block executed as written."""

import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "labels.md"


def test_the_worked_behavior_example_runs(tmp_path, monkeypatch):
    text = DOC.read_text()
    files = re.findall(r"```json file=(\S+)\n(.*?)```", text, flags=re.S)
    assert {name for name, _ in files} == {
        "behavior/episode_00010010.json",
        "behavior/episode_00010011.json",
        "stage_map.json",
    }
    for name, body in files:
        json.loads(body)  # each example file is valid JSON as printed
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    episode = json.loads((tmp_path / "behavior" / "episode_00010010.json").read_text())
    skills = [s["skill_description"][0] for s in episode["skill_annotation"]]
    assert skills.count("move to") >= 5 and len(skills) >= 15  # repeated navigation, as in BEHAVIOR
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(code) == 2  # the BEHAVIOR example, the mistake and failure policies
    monkeypatch.chdir(tmp_path)
    for block in code:
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_labels"})
