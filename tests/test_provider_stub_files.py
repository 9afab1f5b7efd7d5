"""The stub speaks the providers' files APIs the way the real SDKs call them."""

from typing import Any

import openai
import zhipuai


def test_the_openai_sdk_uploads_reads_lists_and_deletes_a_file_on_the_moonshot_api(stub: Any) -> None:
    client = openai.OpenAI(api_key="k", base_url=f"{stub.url}/v1", max_retries=0)
    uploaded = client.files.create(file=("notes.txt", b"hello file"), purpose="file-extract")
    assert (uploaded.filename, uploaded.bytes) == ("notes.txt", 10)
    assert client.files.content(uploaded.id).json()["content"] == "hello file"
    assert [f.id for f in client.files.list()] == [uploaded.id]
    assert client.files.delete(uploaded.id).deleted is True
    assert list(client.files.list()) == []


def test_the_zhipuai_sdk_uploads_and_deletes_a_file_on_the_zai_api(stub: Any) -> None:
    client = zhipuai.ZhipuAI(api_key="k", base_url=f"{stub.url}/api/paas/v4/", max_retries=0)
    uploaded = client.files.create(file=("spec.md", b"# spec"), purpose="file")
    assert uploaded.bytes == 6
    assert [f.id for f in client.files.list().data] == [uploaded.id]
    client.files.delete(file_id=uploaded.id)
    assert client.files.list().data == []


def test_an_unknown_file_is_a_404_through_the_sdk(stub: Any) -> None:
    client = openai.OpenAI(api_key="k", base_url=f"{stub.url}/v1", max_retries=0)
    try:
        client.files.retrieve("file-missing")
    except openai.NotFoundError as exc:
        assert "file-missing" in str(exc)
    else:
        raise AssertionError("retrieving a missing file should fail")
