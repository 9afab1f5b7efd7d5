"""`docgen`: document code step by step, then expert-written documentation."""

from tools_app.tools.workflow import WorkflowTool


class DocGenTool(WorkflowTool):
    name = "docgen"
    profile = "full"
    description = (
        "Work through code to document it (purpose, parameters, complexity, gotchas), then get expert-written docs."
    )
    system_prompt = (
        "You are a technical writer who reads code closely. Write documentation for the code below: purpose, "
        "parameters, return values, errors, complexity where it matters, and non-obvious behaviour, in the "
        "project's docstring style. Never document behaviour the code does not have. "
    )
    extra_properties = {
        "document_complexity": {"type": "boolean"},
        "document_flow": {"type": "boolean"},
        "update_existing": {"type": "boolean"},
    }
    first_actions = ["List the modules and functions that need documentation.", "Note the project's docstring style."]
    middle_actions = ["Read each function's behaviour, errors and edge cases; record them in findings."]
    expert_request = "Write the documentation."
