"""End-to-end fixtures: the built `tessera serve` binary against the default model.

Nothing is built here: $TESSERA_BIN (default build/server/tessera) must exist, and models/
must hold the default model; otherwise the tests fail (scripts/setup.sh makes both).
"""
import pytest
import requests

from e2e_util import Server


@pytest.fixture(scope="session")
def server():
    """The default server (continuous batching), shared by most tests."""
    s = Server("--max-num-seqs", "64", "--kv-cache-mb", "128")
    yield s
    s.stop()
    assert s.proc.returncode == 0, f"unclean shutdown ({s.proc.returncode}):\n{s.log_tail()}"


@pytest.fixture
def start_server():
    """Factory for tests that need their own server (policy, api key, small queue...)."""
    started = []

    def start(*args, env=None, model=None):
        s = Server(*args, env=env, model=model)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def model_name(server):
    return requests.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]


@pytest.fixture(scope="session")
def client(server):
    import openai  # scripts/requirements-test.txt
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)
