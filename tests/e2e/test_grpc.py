"""The gRPC API through a grpcio client generated from proto/ at test time."""
import importlib
import sys
from pathlib import Path

import grpc
import pytest

from e2e_util import REPO, post


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    import grpc_tools.protoc as grpc_tools  # scripts/requirements-test.txt
    out = tmp_path_factory.mktemp("grpc_gen")
    includes = [f"-I{REPO / 'proto'}"]
    # google/protobuf/any.proto ships with grpc_tools.
    includes.append(f"-I{Path(grpc_tools.__file__).parent / '_proto'}")
    rc = grpc_tools.main(["protoc", *includes, f"--python_out={out}", f"--grpc_python_out={out}",
                          str(REPO / "proto" / "inference.proto"),
                          str(REPO / "proto" / "rpc_status.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    try:
        return (importlib.import_module("inference_pb2"),
                importlib.import_module("inference_pb2_grpc"),
                importlib.import_module("rpc_status_pb2"))
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def stub(server, pb):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    yield pb[1].InferenceStub(channel)
    channel.close()


def generate(stub, pb2, **kw):
    return list(stub.Generate(pb2.GenerateRequest(**kw), timeout=120))


def test_generate_matches_http(server, stub, pb):
    pb2 = pb[0]
    responses = generate(stub, pb2, text="The capital of France is",
                         sampling=pb2.SamplingParams(temperature=0, max_tokens=12))
    assert len(responses) > 1  # streamed
    text = "".join(r.text for r in responses)
    ids = [t for r in responses for t in r.token_ids]
    last = responses[-1]
    assert last.finish_reason in (pb2.FINISH_REASON_STOP, pb2.FINISH_REASON_LENGTH)
    assert last.usage.completion_tokens == len(ids)
    assert last.usage.prompt_tokens > 0
    http = post(server, "/v1/completions", {"prompt": "The capital of France is",
                                            "max_tokens": 12, "temperature": 0}).json()
    assert text == http["choices"][0]["text"]


def test_generate_token_ids_logprobs_and_n(stub, pb):
    pb2 = pb[0]
    responses = generate(stub, pb2, token_ids=pb2.TokenIds(ids=[504, 3458, 282]),
                         sampling=pb2.SamplingParams(temperature=0.8, seed=5, max_tokens=4, n=2,
                                                     logprobs=2, ignore_eos=True))
    by_choice = {}
    for r in responses:
        by_choice.setdefault(r.index, []).append(r)
    assert set(by_choice) == {0, 1}
    for rs in by_choice.values():
        lps = [lp for r in rs for lp in r.logprobs]
        assert len(lps) == 4
        assert all(len(lp.top_tokens) == 2 and lp.logprob <= 0 for lp in lps)
        assert rs[-1].finish_reason == pb2.FINISH_REASON_LENGTH


def test_tokenize_health_modelinfo(server, stub, pb):
    pb2 = pb[0]
    tok = stub.Tokenize(pb2.TokenizeRequest(text="Hello world"), timeout=30)
    http = post(server, "/tokenize", {"prompt": "Hello world"}).json()
    assert list(tok.token_ids) == http["tokens"]
    health = stub.Health(pb2.HealthRequest(), timeout=30)
    assert health.status == pb2.HealthResponse.SERVING and health.ready
    info = stub.ModelInfo(pb2.ModelInfoRequest(), timeout=30)
    assert info.max_model_len == http["max_model_len"]
    assert info.vocab_size > 0 and info.model


@pytest.mark.parametrize("kw, code", [
    (dict(text="x", sampling={"temperature": 5}), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(text="x", sampling={"top_p": 0}), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(text="x", sampling={"max_tokens": 100000}), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(token_ids={"ids": [99999999]}), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(text="x", model="other-model"), grpc.StatusCode.NOT_FOUND),
])
def test_generate_validation(stub, pb, kw, code):
    pb2 = pb[0]
    if "sampling" in kw:
        kw["sampling"] = pb2.SamplingParams(**kw["sampling"])
    if "token_ids" in kw:
        kw["token_ids"] = pb2.TokenIds(**kw["token_ids"])
    with pytest.raises(grpc.RpcError) as e:
        generate(stub, pb2, **kw)
    assert e.value.code() == code
    assert e.value.details()


def bad_request_of(err, status_pb2):
    """The google.rpc.BadRequest in an error's grpc-status-details-bin trailer."""
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw, "INVALID_ARGUMENT without google.rpc.Status details"
    st = status_pb2.Status.FromString(raw)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert len(st.details) == 1
    bad = status_pb2.BadRequest()
    assert st.details[0].Unpack(bad)
    return bad


@pytest.mark.parametrize("sampling, field", [
    ({"temperature": 5}, "sampling.temperature"),
    ({"top_p": 0}, "sampling.top_p"),
    ({"n": 0}, "sampling.n"),
    ({"logprobs": -1}, "sampling.logprobs"),
])
def test_invalid_field_details_name_it(stub, pb, sampling, field):
    pb2, _, status_pb2 = pb
    with pytest.raises(grpc.RpcError) as e:
        generate(stub, pb2, text="x", sampling=pb2.SamplingParams(**sampling))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field.split(".")[-1] in e.value.details()
    bad = bad_request_of(e.value, status_pb2)
    assert bad.field_violations[0].field == field
    assert bad.field_violations[0].description


@pytest.mark.parametrize("method, payload", [
    ("Generate", b"\xff\xff\xff\xff"),          # not protobuf at all
    ("Tokenize", b"\x12\x03\xff\xfe\xfd"),      # text (field 2) with invalid UTF-8
    ("Generate", b"\x22\x05\x0d\x00\x00"),      # truncated nested SamplingParams
])
def test_malformed_message_is_invalid_argument(server, method, payload):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        if method == "Generate":
            call = channel.unary_stream(f"/tessera.v1.Inference/{method}")
            with pytest.raises(grpc.RpcError) as e:
                list(call(payload, timeout=30))
        else:
            call = channel.unary_unary(f"/tessera.v1.Inference/{method}")
            with pytest.raises(grpc.RpcError) as e:
                call(payload, timeout=30)
    finally:
        channel.close()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in e.value.details()


def test_no_library_text_in_status_messages(stub, pb):
    """Every error a client can provoke names the problem in our words (no what() of a
    library exception, no C++ type names)."""
    pb2 = pb[0]
    probes = [
        dict(text="x", sampling=pb2.SamplingParams(temperature=float("nan"))),
        dict(text="x", sampling=pb2.SamplingParams(max_tokens=-5)),
        dict(token_ids=pb2.TokenIds(ids=[-1])),
        dict(text="x", sampling=pb2.SamplingParams(stop=["a"] * 100)),
        dict(text="x", sampling=pb2.SamplingParams(top_k=-7)),
    ]
    for kw in probes:
        with pytest.raises(grpc.RpcError) as e:
            generate(stub, pb2, **kw)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (kw, e.value.details())
        msg = e.value.details()
        for leak in ("std::", "basic_string", "what()", "nlohmann", "terminate", "json."):
            assert leak not in msg, msg


def test_client_cancel_frees_kv(server, stub, pb):
    pb2 = pb[0]
    call = stub.Generate(pb2.GenerateRequest(
        text="Write a long poem.", sampling=pb2.SamplingParams(max_tokens=400, ignore_eos=True)),
        timeout=120)
    got = 0
    for _ in call:
        got += 1
        if got == 3:
            break
    call.cancel()
    assert server.wait_metric("tessera:kv_cache_used_blocks", 0) == 0
