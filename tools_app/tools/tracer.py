"""`tracer`: trace execution flow or dependencies step by step, then an expert map."""

from tools_app.tools.workflow import WorkflowTool


class TracerTool(WorkflowTool):
    name = "tracer"
    profile = "full"
    description = "Trace execution flow (precision) or dependencies step by step, then get an expert map."
    system_prompt = (
        "You are a code tracer. From the investigation below, produce a precise map: for precision mode, the "
        "call chain with conditions and side effects in order; for dependencies mode, what the target uses "
        "and what uses it. Mark anything inferred rather than seen. "
    )
    extra_properties = {
        "trace_mode": {"type": "string", "enum": ["precision", "dependencies", "ask"]},
        "target_description": {"type": "string", "description": "What to trace and why."},
    }
    first_actions = [
        "Locate the target (function, class or module) and its entry points.",
        "Decide the trace mode and its scope.",
    ]
    middle_actions = ["Follow each call or dependency one level further; record it in relevant_context."]
    expert_request = "Produce the trace map."
