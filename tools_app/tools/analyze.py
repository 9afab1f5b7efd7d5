"""`analyze`: architecture and code analysis, step by step, with an expert assessment."""

from tools_app.tools.workflow import WorkflowTool


class AnalyzeTool(WorkflowTool):
    name = "analyze"
    description = (
        "Analyze code or architecture step by step (structure, performance, risks), then get an expert assessment."
    )
    system_prompt = (
        "You are a software architect. Assess the code described below: structure, coupling, scalability, "
        "maintainability, performance and risks. Prioritise the findings by impact and give concrete, "
        "incremental recommendations. "
    )
    extra_properties = {
        "analysis_type": {"type": "string", "enum": ["architecture", "performance", "security", "quality", "general"]},
        "output_format": {"type": "string", "enum": ["summary", "detailed", "actionable"]},
    }
    first_actions = [
        "Map the codebase area: entry points, main modules, dependencies.",
        "Note the patterns and conventions it follows.",
    ]
    middle_actions = [
        "Examine the parts most likely to carry risk or cost (hot paths, shared state, error handling).",
        "Record each concern with its evidence in findings.",
    ]
    expert_request = "Give a prioritised assessment with concrete recommendations."
