"""CSIRT playbooks: the playbook model, YAML loader, named queries and the triage runner.

Playbook content (YAML) ships in ``playbooks/content``. Nothing is loaded at import time:
call :func:`playbooks.loader.load_builtin_playbooks` (or ``load_playbooks``) explicitly.
Dependency direction: playbooks imports collector and agents.schema/errors, never the CLI.
"""
