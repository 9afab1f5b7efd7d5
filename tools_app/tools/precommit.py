"""`precommit`: validate pending changes before a commit, then an expert check."""

from tools_app.tools.workflow import WorkflowTool


class PrecommitTool(WorkflowTool):
    name = "precommit"
    description = (
        "Validate pending git changes (completeness, regressions, security) step by step, then get an expert check."
    )
    system_prompt = (
        "You are reviewing changes about to be committed. From the investigation and files below, find what "
        "would break: incomplete changes, regressions, missing tests, security problems and mismatches with "
        "the stated intent. Be specific about file and line. "
    )
    extra_properties = {
        "path": {"type": "string", "description": "Repository path."},
        "compare_to": {"type": "string", "description": "Git ref to compare against."},
        "include_staged": {"type": "boolean"},
        "include_unstaged": {"type": "boolean"},
        "severity_filter": {"type": "string", "enum": ["critical", "high", "medium", "low", "all"]},
    }
    first_actions = [
        "Collect the diff (staged/unstaged or against compare_to) and list changed files.",
        "State what the change is meant to do.",
    ]
    middle_actions = [
        "Check each changed file for completeness and regressions; record issues with severity.",
        "Check tests cover the change.",
    ]
    expert_request = "Check the pending changes: what must be fixed before committing."
