"""`refactor`: find refactoring opportunities step by step, then an expert plan."""

from tools_app.tools.workflow import WorkflowTool


class RefactorTool(WorkflowTool):
    name = "refactor"
    description = (
        "Find refactoring opportunities step by step (smells, decomposition, modernisation), then get an expert plan."
    )
    system_prompt = (
        "You are a refactoring expert. From the investigation and files below, propose refactorings ordered "
        "by value and risk: what to change, where, the target shape, and how to do it safely in small steps "
        "with tests. "
    )
    extra_properties = {
        "refactor_type": {"type": "string", "enum": ["codesmells", "decompose", "modernize", "organization"]},
        "focus_areas": {"type": "array", "items": {"type": "string"}},
        "style_guide_examples": {"type": "array", "items": {"type": "string"}},
    }
    first_actions = [
        "Read the code and note its responsibilities and pain points.",
        "Identify code smells, long functions and duplicated logic.",
    ]
    middle_actions = [
        "Assess each opportunity's value and risk; note tests that protect it.",
        "Record concrete refactoring candidates in findings.",
    ]
    expert_request = "Propose the refactoring plan, in safe incremental steps."
