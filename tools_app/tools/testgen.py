"""`testgen`: plan tests for code step by step, then expert-written test cases."""

from tools_app.tools.workflow import WorkflowTool


class TestGenTool(WorkflowTool):
    name = "testgen"
    description = "Study code paths and edge cases step by step, then get expert-designed tests."
    system_prompt = (
        "You are a test engineer. From the investigation and files below, design tests that matter: the "
        "critical paths, boundaries, failure modes and concurrency hazards, written in the project's "
        "framework and style, each with the reason it exists. "
    )
    extra_properties = {
        "test_examples": {"type": "array", "items": {"type": "string"}, "description": "Existing tests to follow."}
    }
    first_actions = [
        "Read the code under test; list its public behaviour and dependencies.",
        "Find the existing test framework and style.",
    ]
    middle_actions = [
        "Enumerate edge cases, error paths and boundary values.",
        "Decide what to fake and what to run for real.",
    ]
    expert_request = "Write the tests, following the project's framework and style."
