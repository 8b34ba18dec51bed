"""The REST API: ``create_app`` (app.py) over the checks and gated calls of service.py, with the
request limits of limits.py and the per-run schemas of schemas.py."""

from affectfusion.serve.api.app import create_app
from affectfusion.serve.api.service import check_upload, display_name

__all__ = ["check_upload", "create_app", "display_name"]
