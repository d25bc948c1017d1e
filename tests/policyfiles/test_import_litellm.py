"""``gateway policy import-litellm``: a realistic LiteLLM proxy config (tests/data/litellm_config.yaml, 14 entries
across OpenAI, Azure, Anthropic, Bedrock, Gemini, vLLM, Ollama, Mistral, DeepSeek and one fine-tune no catalog
knows) round-trips into a policy set that `policy check`, `policy test` and `policy explain` accept once ops fill
in what the importer could not know."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from gateway.cli.main import main
from gateway.policyfiles.litellm_import import EXAMPLE_KEY
from gateway.policyfiles.litellm_names import CatalogIndex, name_key
from gateway.policyfiles.litellm_providers import provider_of, region_country
from gateway.standin.control import Fault
from tests.conftest import GatewayFactory, Upstreams
from tests.factories import REPO

CONFIG = REPO / "tests" / "data" / "litellm_config.yaml"
KNOWN_FLAGS = ("--jurisdiction", "azure=SE", "--jurisdiction", "self-hosted=DE")
KEYS = ("OPENAI_API_KEY", "AZURE_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "VLLM_API_KEY", "MISTRAL_API_KEY",
        "DEEPSEEK_API_KEY")  # fmt: skip
# client model name -> the deployments a request for it may reach
REACHES = {
    "gpt-4.1": {"gpt-4.1-openai", "gpt-4.1-azure"},
    "gpt-4o-mini": {"gpt-4o-mini-openai"},
    "claude-sonnet": {"claude-sonnet-4-anthropic", "claude-sonnet-4-bedrock"},
    "gemini-pro": {"gemini-2.5-pro-gemini"},
    "qwen": {"qwen3-32b-hosted_vllm"},
    "deepseek-v3": {"deepseek-v3-hosted_vllm", "deepseek-v3-deepseek"},
    "llama-70b": {"llama-3.3-70b-instruct-openai"},
    "llama-small": {"llama-3.1-8b-instruct-ollama"},
    "mistral-large": {"mistral-large-2411-mistral"},
    "deepseek-chat": {"deepseek-v3-hosted_vllm", "deepseek-v3-deepseek"},
    "support-bot": {"support-llm-v2-hosted_vllm"},
    "claude": {"claude-sonnet-4-anthropic", "claude-sonnet-4-bedrock"},  # router_settings.model_group_alias
    "gpt-4": {"gpt-4.1-openai", "gpt-4.1-azure"},
}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_VLLM_BASE", "http://deepseek-vllm.internal:8000/v1")  # the config's os.environ/
    for name in KEYS:
        monkeypatch.setenv(name, f"test-value-of-{name}")


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def imported(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str, config: Path = CONFIG) -> Path:
    out_dir = tmp_path / "imported"
    code, _, err = run(capsys, "policy", "import-litellm", config, out_dir, *flags)
    assert code == 0, err
    return out_dir


def fill_unknown_model(out_dir: Path) -> None:
    text = (out_dir / "models.yaml").read_text()
    head, _, entry = text.partition("  support-llm-v2:\n")
    filled = {
        "vendor": "Acme",
        "origin": "DE",
        "open_weights": "true",
        "license": "Apache-2.0",
        "quality_tier": "basic",
    }
    for field, value in filled.items():
        entry = re.sub(rf"{field}: FILL-ME.*", f"{field}: {value}", entry, count=1)
    (out_dir / "models.yaml").write_text(head + "  support-llm-v2:\n" + entry)


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_summary_counts_models_known_from_the_catalog_and_those_left_to_fill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "policy", "import-litellm", CONFIG, tmp_path / "out")
    assert code == 0, err
    assert "11 models imported, 10 known from the catalog, 1 need provenance: support-llm-v2" in out
    assert "14 deployments, 9 routes, 12 client model names" in out
    assert "models.support-llm-v2: vendor, origin, open_weights, license, quality_tier" in out
    assert "deployments.gpt-4.1-azure: jurisdiction" in out  # Azure's region is not in the config
    assert "deployments.qwen3-32b-hosted_vllm: jurisdiction" in out  # self-hosted: where is for ops to say
    for section in ("litellm_settings", "router_settings", "general_settings"):
        assert f"note: {section}: not imported" in err
    assert "tpm not imported" in err
    assert "router_settings.model_group_alias.legacy: no model_name 'no-such-group'; skipped" in err


def test_the_files_carry_the_schema_line_provenance_from_the_catalog_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = imported(tmp_path, capsys)
    names = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert names == ["aliases.yaml", "cases/litellm.yaml", "deployments.yaml", "models.yaml", "routes.yaml",
                     "schema/cases.schema.json", "schema/policy.schema.json", "tenants.yaml"]  # fmt: skip
    for name in ("models.yaml", "deployments.yaml", "routes.yaml", "tenants.yaml", "aliases.yaml"):
        assert (out_dir / name).read_text().startswith("# yaml-language-server: $schema=schema/policy.schema.json\n")
    shipped = yaml.safe_load((REPO / "policies" / "models.yaml").read_text())["models"]
    models = yaml.safe_load((out_dir / "models.yaml").read_text())["models"]
    assert models["qwen3-32b"] == shipped["qwen3-32b"]  # hosted_vllm/Qwen/Qwen3-32B
    assert models["claude-sonnet-4"] == shipped["claude-sonnet-4"]  # two spellings, one model
    deployments = yaml.safe_load((out_dir / "deployments.yaml").read_text())["deployments"]
    assert deployments["gpt-4.1-openai"] | {"caps": None} == {
        "model": "gpt-4.1", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
        "operator": "OpenAI", "jurisdiction": "US", "caps": None,
    }  # fmt: skip
    assert deployments["gpt-4.1-openai"]["caps"] == {"rpm": 500}
    assert deployments["gpt-4.1-azure"]["base_url"] == "https://acme-sweden.openai.azure.com?api-version=2024-10-21"
    assert deployments["claude-sonnet-4-bedrock"]["jurisdiction"] == "US"  # a us. cross-region profile
    assert deployments["mistral-large-2411-mistral"]["jurisdiction"] == "FR"
    assert deployments["deepseek-v3-deepseek"]["jurisdiction"] == "CN"
    assert deployments["llama-3.1-8b-instruct-ollama"]["base_url"] == "http://ollama:11434/v1"
    assert deployments["deepseek-v3-hosted_vllm"]["base_url"] == "${DEEPSEEK_VLLM_BASE}"
    assert all(d.get("self_hosted") for k, d in deployments.items() if k.endswith(("vllm", "ollama", "-openai"))
               and d["operator"] == "self-hosted")  # fmt: skip
    written = "".join(p.read_text() for p in out_dir.rglob("*.yaml"))
    assert "test-value-of" not in written and "os.environ" not in written


def test_check_fails_only_on_the_unknown_model_naming_each_field_to_fill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = imported(tmp_path, capsys, *KNOWN_FLAGS)
    code, _, err = run(capsys, "policy", "check", out_dir)
    assert code == 1
    problems = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert problems[-1] == f"1 problem(s) in {out_dir}"
    assert (
        "models.support-llm-v2: unknown provenance: set vendor, origin, open_weights, license, quality_tier"
        in (problems[0])
    )
    assert problems[0].startswith(f"{out_dir / 'models.yaml'}:")


def test_without_jurisdictions_check_names_every_deployment_whose_data_destination_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = imported(tmp_path, capsys)
    code, _, err = run(capsys, "policy", "check", out_dir)
    assert code == 1
    for dep in ("gpt-4.1-azure", "qwen3-32b-hosted_vllm", "llama-3.1-8b-instruct-ollama"):
        assert f"deployments.{dep}: unknown provenance: set jurisdiction for this deployment" in err


def test_once_filled_check_passes_and_every_client_name_routes_to_its_deployments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = imported(tmp_path, capsys, *KNOWN_FLAGS)
    fill_unknown_model(out_dir)
    code, out, err = run(capsys, "policy", "check", out_dir)
    assert code == 0, err
    assert "11 models, 14 deployments, 1 tenants, 9 routes" in out
    code, out, err = run(capsys, "policy", "test", out_dir)
    assert code == 0, err
    assert "12 passed, 0 failed" in out
    for client_name, deployments in REACHES.items():
        request = tmp_path / f"{client_name}.json"
        request.write_text(json.dumps({"model": client_name, "messages": [{"role": "user", "content": "hi"}]}))
        code, out, err = run(
            capsys, "policy", "explain", "--policies", out_dir, "--tenant", "litellm-clients", "--request", request
        )
        assert code == 0, err
        assert set(json.loads(out)["decision"]["order"]) == deployments, client_name
    code, out, err = run(capsys, "policy", "verify", out_dir)
    assert code == 0, out + err


def test_a_group_reaching_deployments_of_another_group_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "policy", "import-litellm", CONFIG, tmp_path / "out")
    assert code == 0
    assert "model_name 'deepseek-chat': the gateway also reaches deepseek-v3-hosted_vllm for deepseek-v3" in err


def test_a_literal_key_is_refused_without_printing_it_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with(tmp_path, CONFIG.read_text().replace("os.environ/MISTRAL_API_KEY", "sk-live-SECRET123"))
    code, out, err = run(capsys, "policy", "import-litellm", config, tmp_path / "out")
    assert code == 2
    assert "model_list[10] (model_name 'mistral-large'): litellm_params.api_key is a literal secret" in err
    assert "SECRET123" not in out + err
    assert not (tmp_path / "out").exists()


def test_a_literal_key_can_be_replaced_by_a_new_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with(tmp_path, CONFIG.read_text().replace("os.environ/MISTRAL_API_KEY", "sk-live-SECRET123"))
    out_dir = imported(tmp_path, capsys, "--replace-literal-keys", config=config)
    deployments = yaml.safe_load((out_dir / "deployments.yaml").read_text())["deployments"]
    assert deployments["mistral-large-2411-mistral"]["api_key_env"] == "MISTRAL_LARGE_MISTRAL_API_KEY"
    assert "SECRET123" not in "".join(p.read_text() for p in out_dir.rglob("*.yaml"))


def test_other_literal_secrets_are_refused_even_with_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CONFIG.read_text().replace("os.environ/AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
    code, _, err = run(capsys, "policy", "import-litellm", config_with(tmp_path, text), tmp_path / "out",
                       "--replace-literal-keys")  # fmt: skip
    assert code == 2
    assert "litellm_params.aws_secret_access_key is a literal secret" in err
    assert "wJalrXUtnFEMI" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_list: [\n  - {model_name: a", "not YAML"),
        ("- just\n- a list\n", "the top level must be a mapping with a model_list"),
        ("litellm_settings: {drop_params: true}\n", "no model_list"),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {api_base: http://x}\n",
            "litellm_params.model is missing",
        ),
        ("model_list:\n  - litellm_params: {model: openai/gpt-4.1}\n", "model_name is missing"),
        ("model_list:\n  - {model_name: a, litellm_params: {model: my-model}}\n", "has no provider prefix"),
        ("model_list:\n  - {model_name: 'a b', litellm_params: {model: openai/gpt-4.1}}\n", "cannot be a gateway name"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    code, _, err = run(capsys, "policy", "import-litellm", config_with(tmp_path, text), tmp_path / "out")
    assert code == 2
    assert message in err and "nothing written" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_and_a_bad_jurisdiction_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "policy", "import-litellm", tmp_path / "nope.yaml", tmp_path / "out")
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "policy", "import-litellm", CONFIG, tmp_path / "out", "--jurisdiction", "azure=UK")
    assert code == 2 and "--jurisdiction 'azure=UK'" in err and "GB" in err


def test_a_directory_that_is_not_empty_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "policy", "import-litellm", CONFIG, out_dir)
    assert code == 2 and "is not empty" in err and "--force" in err
    assert [p.name for p in out_dir.iterdir()] == ["notes.txt"]
    code, _, err = run(capsys, "policy", "import-litellm", CONFIG, out_dir, "--force")
    assert code == 0, err
    assert (out_dir / "notes.txt").read_text() == "mine" and (out_dir / "models.yaml").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_wildcards_are_skipped_with_a_note_and_unknown_first_party_models_keep_the_vendor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with(tmp_path, """
model_list:
  - {model_name: "*", litellm_params: {model: "openai/*"}}
  - {model_name: gpt-next, litellm_params: {model: openai/gpt-9-preview, api_key: os.environ/OPENAI_API_KEY}}
  - {model_name: hosted, litellm_params: {model: openai/some-model, api_base: https://api.example.com/v1}}
""")  # fmt: skip
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "policy", "import-litellm", config, out_dir)
    assert code == 0, err
    assert "model_list[0] (model_name '*'): wildcard routing (openai/*) not imported" in err
    models = yaml.safe_load((out_dir / "models.yaml").read_text())["models"]
    assert models["gpt-9-preview"] | {"quality_tier": None} == {
        "vendor": "OpenAI", "origin": "US", "open_weights": False, "license": "proprietary", "quality_tier": None,
        "endpoints": ["chat"], "description": "Imported from LiteLLM (openai/gpt-9-preview).",
    }  # fmt: skip
    assert models["gpt-9-preview"]["quality_tier"] == "FILL-ME"
    deployments = yaml.safe_load((out_dir / "deployments.yaml").read_text())["deployments"]
    public = deployments["some-model-openai"]  # an OpenAI-compatible API on the internet is not ours
    assert (public["operator"], public["jurisdiction"], public.get("self_hosted")) == ("FILL-ME", "FILL-ME", None)


@pytest.mark.parametrize(
    ("litellm", "catalog_id"),
    [
        ("Qwen/Qwen3-32B", "qwen3-32b"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("converse/anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("llama3.3:70b", "llama-3.3-70b-instruct"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("deepseek-chat", "deepseek-v3"),  # through the catalog's deployments' upstream_model
    ],
)
def test_names_match_the_catalog_after_normalising(litellm: str, catalog_id: str) -> None:
    index = CatalogIndex.of(
        ["qwen3-32b", "claude-sonnet-4", "llama-3.3-70b-instruct", "llama-3.1-8b-instruct", "gpt-4o-mini",
         "gpt-4.1-mini", "gpt-4.1", "deepseek-v3"],
        {"deepseek-chat": "deepseek-v3"},
    )  # fmt: skip
    assert index.match(litellm) == catalog_id


def test_names_that_are_other_models_do_not_match() -> None:
    index = CatalogIndex.of(["qwen3-235b-a22b", "mistral-large-2411", "gpt-4.1"], {})
    assert index.match("Qwen/Qwen3-235B-A22B-Instruct-2507") is None  # a separate checkpoint
    assert index.match("mistral-large-latest") is None
    assert index.match("gpt-4.1-mini") is None
    assert name_key("GPT-4.1") == name_key("gpt-4.1")


def test_regions_give_a_jurisdiction_only_when_it_is_certain() -> None:
    assert region_country("bedrock", "eu-central-1", "anthropic.claude-3-haiku-20240307-v1:0") == "DE"
    assert region_country("bedrock", "eu-central-1", "eu.anthropic.claude-3-haiku-20240307-v1:0") == "FILL-ME"
    assert region_country("bedrock", None, "mistral.mistral-large-2407-v1:0") == "FILL-ME"
    assert region_country("vertex_ai", "europe-west4", "gemini-2.5-pro") == "NL"
    assert region_country("vertex_ai", "us-central1", "gemini-2.5-pro") == "US"
    assert provider_of("openai", "http://vllm:8000/v1").self_hosted
    assert provider_of("openai", "http://192.168.1.5:8000/v1").self_hosted
    assert not provider_of("openai", "https://api.together.xyz/v1").self_hosted
    assert provider_of("openai", None).operator == "OpenAI"


def test_an_imported_group_serves_its_client_name_and_fails_over_between_its_deployments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], upstreams: Upstreams, make_gateway: GatewayFactory
) -> None:
    """The set the importer writes, served for real: the OpenAI SDK asks for LiteLLM's model_name ``qwen``, a
    group of two vLLM stand-ins; the first fails, the second answers."""
    config = config_with(tmp_path, """
model_list:
  - {model_name: qwen, litellm_params: {model: hosted_vllm/Qwen/Qwen3-32B, api_base: os.environ/QWEN_A}}
  - {model_name: qwen, litellm_params: {model: hosted_vllm/Qwen/Qwen3-32B, api_base: os.environ/QWEN_B}}
""")  # fmt: skip
    out_dir = imported(tmp_path, capsys, "--jurisdiction", "self-hosted=US", config=config)
    env = {"QWEN_A": upstreams.urls["a"] + "/v1", "QWEN_B": upstreams.urls["b"] + "/v1"}
    upstreams.controls["a"].inject(Fault(status=503, times=10))
    with make_gateway(out_dir, env) as url:
        client = OpenAI(base_url=url + "/v1", api_key=EXAMPLE_KEY, max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert reply.model == "qwen3-32b"
    assert upstreams.controls["a"].count() >= 1 and upstreams.controls["b"].count() == 1
