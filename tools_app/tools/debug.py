"""`debug`: systematic root-cause investigation, confirmed by an expert model."""

from tools_app.tools.workflow import WorkflowTool


class DebugTool(WorkflowTool):
    name = "debug"
    profile = "lean"
    description = (
        "Investigate a bug step by step (symptoms, hypotheses, evidence), then get an expert root-cause analysis."
    )
    system_prompt = (
        "You are an expert debugger. From the investigation below, identify the most likely root cause, "
        "ranked alternatives with the evidence for each, the minimal fix, and how to verify it. Never invent "
        "code you have not been shown; say what evidence is missing. "
    )
    extra_properties = {}
    first_actions = [
        "Describe the symptoms exactly: error text, when it happens, what changed.",
        "Find the code path that produces the symptom and read it; list the files in files_checked.",
    ]
    middle_actions = [
        "Form or refine a hypothesis and look for evidence that confirms or refutes it.",
        "Trace the data/control flow around the failure; note each suspect in relevant_context.",
    ]
    expert_request = "Identify the root cause, the fix and how to verify it."
