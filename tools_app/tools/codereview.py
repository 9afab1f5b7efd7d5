"""`codereview`: a systematic code review, then an expert review of the findings."""

from tools_app.tools.workflow import WorkflowTool


class CodeReviewTool(WorkflowTool):
    name = "codereview"
    profile = "lean"
    description = (
        "Review code step by step (correctness, security, performance, maintainability), then get an expert review."
    )
    system_prompt = (
        "You are a meticulous senior code reviewer. Using the investigation and the files below, report real "
        "problems only, each with severity (critical/high/medium/low), location, why it matters and a "
        "concrete fix. Respect the requested review type, focus and standards; skip nitpicks unless asked. "
    )
    extra_properties = {
        "review_type": {"type": "string", "enum": ["full", "security", "performance", "quick"]},
        "focus_on": {"type": "string"},
        "standards": {"type": "string"},
        "severity_filter": {"type": "string", "enum": ["critical", "high", "medium", "low", "all"]},
    }
    first_actions = [
        "Read the code under review and understand its purpose and context.",
        "List the files in relevant_files; note the review scope.",
    ]
    middle_actions = [
        "Check correctness, error handling and edge cases; record each issue in issues_found with its severity.",
        "Check security and performance concerns relevant to this code.",
    ]
    expert_request = "Review the code and the findings: confirm, correct and complete them, ordered by severity."
