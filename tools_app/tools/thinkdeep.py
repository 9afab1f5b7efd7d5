"""`thinkdeep`: extended reasoning on a hard problem, checked by a second model."""

from tools_app.tools.workflow import WorkflowTool


class ThinkDeepTool(WorkflowTool):
    name = "thinkdeep"
    profile = "lean"
    description = (
        "Think a hard problem through step by step, then have a Kimi/GLM model challenge and extend your reasoning."
    )
    system_prompt = (
        "You are a senior engineer reviewing another AI's step-by-step reasoning on a hard technical problem. "
        "Find gaps, wrong assumptions and overlooked alternatives, weigh trade-offs, and say what you would "
        "conclude and why. Be concrete; do not repeat what is already right. "
    )
    extra_properties = {
        "problem_context": {"type": "string", "description": "Background the expert should know."},
        "focus_areas": {"type": "array", "items": {"type": "string"}, "description": "e.g. performance, security."},
    }
    first_actions = [
        "State the problem and what a good answer must satisfy.",
        "List the assumptions you are making and check the riskiest one in the code or docs.",
    ]
    middle_actions = [
        "Test your current hypothesis against the evidence; look for what would disprove it.",
        "Consider at least one alternative approach and its trade-offs.",
    ]
    expert_request = (
        "Evaluate this reasoning critically: what is missing or wrong, which alternative is better, your conclusion."
    )
