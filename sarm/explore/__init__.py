"""`sarm explore`: a local web page to see a dataset's progress, weights and annotation spans.

`catalog` (`Catalog`: the episode list and one episode's detail as JSON-ready dicts), `detail` (an
episode's labels read fresh with the staleness token, label progress, stage probabilities), `edit`
(label edits: validated by sarm.labels, saved through sarm.data.edit, exported as spans JSON), `server`
(`ExploreServer`: the standard library HTTP server with a token, file serving with range requests and
the path / Host / Origin checks; `safe_path`).
"""

from sarm.explore.catalog import Catalog
from sarm.explore.server import ExploreServer, safe_path

__all__ = ["Catalog", "ExploreServer", "safe_path"]
