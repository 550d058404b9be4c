"""Execute an analysis notebook against a finished study: `python run_notebook.py NB STUDY_DIR`.

The study directory reaches the notebook through SSL_ROBUSTNESS_STUDY; the executed copy is
written beside the study (STUDY_DIR/analysis.executed.ipynb), the committed notebook stays clean.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    notebook, study = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
    if not (study / "tables" / "results.csv").exists():
        sys.exit(f"{study}: no tables/results.csv; run the study first")
    os.environ["SSL_ROBUSTNESS_STUDY"] = str(study)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()
    out = study / "analysis.executed.ipynb"
    nbformat.write(nb, out)
    print(f"executed {notebook} against {study}: {out}")


if __name__ == "__main__":
    main()
