"""Push an export folder (merged model or adapter, with its model card) to the Hugging Face Hub.

Needs network and a token ($HF_TOKEN or `huggingface-cli login`). The repository is created
when missing (private unless asked otherwise); the folder is uploaded in one commit.

    url = push(Path("out/merged"), "me/smollm2-rag", private=True)
"""

from __future__ import annotations

from pathlib import Path

from ragtune.export import ExportError


def push(folder: Path, repo_id: str, private: bool = True, message: str | None = None) -> str:
    """Upload `folder` to model repo `repo_id`; returns the repository URL."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ExportError(f"push_to_hub: {repo_id!r} is not a repo id of the form OWNER/NAME")
    if not (folder / "README.md").is_file():
        raise ExportError(f"{folder}: no README.md model card to push with the files")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=str(folder),
            commit_message=message or f"ragtune export: {folder.name}",
        )
    except Exception as e:  # network, auth and hub errors come in many types
        raise ExportError(f"push_to_hub {repo_id}: {type(e).__name__}: {e}") from e
    return str(url)
