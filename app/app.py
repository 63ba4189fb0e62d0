"""Flask's development server, the original tutorial's way to serve: `python app/app.py` (debugging; production is gunicorn).

HOST (default 127.0.0.1), PORT (default 5000); FLASK_DEBUG=1 turns on the debugger and the reloader.
"""
import os
import sys
from pathlib import Path


def main() -> None:
    from app import create_app

    try:
        application = create_app()
    except RuntimeError as err:  # a model that cannot be served or a bad setting: one line, non-zero exit
        sys.exit(f"error: {err}")
    application.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))


if __name__ == "__main__":
    # Run as a script, app/ is first on sys.path and `import app` would find this file; the package lives one level up.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    main()
