"""`sarm annotate`: subtask spans from a vision-language model (LeRobot's SARM Step 1), checked and resumable.

`prompt` (the instructions and the strict reading of an answer), `backends` (a local `transformers` VLM or
an OpenAI-compatible chat-completions endpoint), `run` (the resumable, parallel episode loop), `write`
(LeRobot's columns into meta/episodes, or spans JSON files) and `verify` (PNGs to check the spans by eye).
Docs: docs/annotate.md.
"""

from sarm.annotate.backends import BackendError, EndpointBackend, Frame, TransformersBackend
from sarm.annotate.prompt import AnswerError, parse_answer
from sarm.annotate.run import AnnotateSettings, Summary, annotate_episodes

__all__ = [
    "AnnotateSettings",
    "AnswerError",
    "BackendError",
    "EndpointBackend",
    "Frame",
    "Summary",
    "TransformersBackend",
    "annotate_episodes",
    "parse_answer",
]
