"""/api/experiments and /api/feedback: the lifecycle, admins only, sticky variants recorded once per
unit, feedback tied to what answered, the SRM check, and an end-to-end experiment whose report
names the better prompt while an A/A experiment on the same traffic flags nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from lib import db
from lib.config import get_settings
from lib.experiments.assign import assign
from lib.experiments.store import Variant
from tests.conftest import run_async
from tests.test_ai_execute import sse_chunks


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rows(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute(sql, params).fetchall()


def prompt(client, name: str, system: str, **extra) -> int:
    response = client.post("/api/prompts", json={"name": name, "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": "{{question}}"}], **extra})
    assert response.status_code == 201, response.text
    return response.json()["version"]


def experiment(client, name: str, variants: list[dict], **extra) -> dict:
    response = client.post("/api/experiments", json={"name": name, "variants": variants, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def act(client, name: str, action: str, **extra):
    return client.post("/api/experiments", json={"action": action, "name": name, **extra})


def ask(client, **body) -> dict:
    response = client.post("/api/ai_execute", json=body)
    assert response.status_code == 200, response.text
    return response.json()


ECHO_VARIANTS = [{"name": "a", "model": "local/echo"}, {"name": "b", "model": "local/echo", "params": {"max_tokens": 3}}]


# --- lifecycle ----------------------------------------------------------------------------------


def test_the_lifecycle_and_its_refusals(client) -> None:
    name = unique("life")
    created = experiment(client, name, ECHO_VARIANTS)
    assert created["status"] == "draft" and created["control"] == "a" and created["unit"] == "user"
    replaced = experiment(client, name, ECHO_VARIANTS, metric="latency", control="b")  # a draft may change
    assert replaced["metric"] == "latency" and replaced["control"] == "b"
    assert act(client, name, "pause").status_code == 409
    assert act(client, name, "start").json()["status"] == "running"
    again = client.post("/api/experiments", json={"name": name, "variants": ECHO_VARIANTS})
    assert again.status_code == 409 and "fixed" in again.text
    assert act(client, name, "pause").json()["status"] == "paused"
    assert act(client, name, "start").json()["status"] == "running"
    stopped = act(client, name, "stop").json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"]
    assert act(client, name, "start").status_code == 409
    assert act(client, unique("nothing"), "start").status_code == 404
    listed = client.get("/api/experiments").json()["experiments"]
    assert any(e["name"] == name and e["status"] == "stopped" for e in listed)


@pytest.mark.parametrize(("body", "field"), [
    ({"variants": [{"name": "a"}]}, "variants"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "body"),
    ({"variants": [{"name": "a"}, {"name": "b"}], "control": "c"}, "body"),
    ({"variants": [{"name": "a"}, {"name": "b", "weight": 0}]}, "variants.1.weight"),
    ({"variants": [{"name": "a"}, {"name": "b", "model": "nope/x"}]}, "variants.1.model"),
    ({"variants": [{"name": "a"}, {"name": "b", "prompt": {"name": "missing", "version": 1}}]}, "variants.1.prompt"),
    ({"variants": [{"name": "a"}, {"name": "b"}], "unit": "session"}, "unit"),
    ({"variants": [{"name": "a"}, {"name": "b"}], "metric": "vibes"}, "metric"),
])
def test_bad_definitions_name_the_field(client, body, field) -> None:
    response = client.post("/api/experiments", json={"name": unique("bad"), **body})
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]], response.text


def test_only_admins_run_and_read_experiments(client, env) -> None:
    env(API_KEYS="root-key,tenant-key:docs")
    admin, tenant = {"authorization": "Bearer root-key"}, {"authorization": "Bearer tenant-key"}
    name = unique("guarded")
    body = {"name": name, "variants": ECHO_VARIANTS}
    refused = client.post("/api/experiments", json=body, headers=tenant)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert client.post("/api/experiments", json=body, headers=admin).status_code == 201
    assert client.post("/api/experiments", json={"action": "start", "name": name}, headers=tenant).status_code == 403
    assert client.get("/api/experiments", params={"name": name}, headers=tenant).status_code == 403
    assert client.get("/api/experiments", params={"name": name}, headers=admin).status_code == 200
    # taking part is not admin business: a tenant's requests are assigned like anyone's
    client.post("/api/experiments", json={"action": "start", "name": name}, headers=admin)
    served = client.post("/api/ai_execute", json={"experiment": name, "user": "u1", "prompt": "hi"}, headers=tenant)
    assert served.status_code == 200 and served.json()["experiment"]["name"] == name


# --- assignment and exposures -----------------------------------------------------------------


def test_a_user_keeps_a_variant_and_is_exposed_once(client, database) -> None:
    name = unique("sticky")
    experiment(client, name, ECHO_VARIANTS, start=True)
    seen = {}
    for user in ("ann", "bob", "cy", "dee"):
        variants = {ask(client, experiment=name, user=user, prompt="hi")["experiment"]["variant"] for _ in range(3)}
        assert len(variants) == 1
        seen[user] = variants.pop()
        # what any other instance computes from the hash alone
        assert seen[user] == assign(name, f"anonymous/{user}", [Variant("a", 1.0), Variant("b", 1.0)]).name
    exposures = rows(database, "SELECT unit, variant FROM experiment_exposures WHERE experiment = %s", (name,))
    assert sorted(exposures) == sorted((f"anonymous/{u}", v) for u, v in seen.items())
    assert rows(database, "SELECT count(*) FROM experiment_requests WHERE experiment = %s", (name,)) == [(12,)]


def test_the_variant_applies_its_model_and_params_over_the_request(client, fake_provider) -> None:
    name = unique("models")
    experiment(client, name, [{"name": "mini", "model": "openai/gpt-4o-mini", "params": {"temperature": 0.1}},
                              {"name": "mini-hot", "model": "openai/gpt-4o-mini", "params": {"temperature": 1.5}}],
               unit="request", start=True)
    for _ in range(6):
        data = ask(client, experiment=name, prompt="hi", model="local/echo", temperature=0.7)
        assert data["model"] == "openai/gpt-4o-mini"
        expected = 0.1 if data["experiment"]["variant"] == "mini" else 1.5
        assert fake_provider.requests[-1].body["temperature"] == expected


@pytest.mark.parametrize(("unit", "missing"), [("user", "user"), ("conversation", "conversation_id")])
def test_the_unit_must_be_in_the_request(client, unit, missing) -> None:
    name = unique("unit")
    experiment(client, name, ECHO_VARIANTS, unit=unit, start=True)
    response = client.post("/api/ai_execute", json={"experiment": name, "prompt": "hi"})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == missing
    chat = ask(client, experiment=name, prompt="hi", user="u", id="chat-1")
    assert chat["experiment"]["name"] == name


def test_unknown_experiments_are_422(client) -> None:
    response = client.post("/api/ai_execute", json={"experiment": unique("ghost"), "prompt": "hi"})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "experiment"


def test_paused_serves_control_and_a_winner_serves_everyone_and_moves_the_label(client, database) -> None:
    name, tone = unique("outcome"), unique("tone")
    prompt(client, tone, "Be formal.", model="local/echo", labels=["production"])
    prompt(client, tone, "Be casual.", model="local/echo")
    experiment(client, name, [{"name": "formal", "prompt": {"name": tone, "version": 1}},
                              {"name": "casual", "prompt": {"name": tone, "version": 2}}], start=True)
    act(client, name, "pause")
    before = rows(database, "SELECT count(*) FROM experiment_requests WHERE experiment = %s", (name,))
    for user in ("p", "q", "r", "s"):
        data = ask(client, experiment=name, user=user, template={"name": tone, "variables": {"question": "hey"}})
        assert data["experiment"]["variant"] == "formal" and data["prompt"]["version"] == 1
    assert rows(database, "SELECT count(*) FROM experiment_requests WHERE experiment = %s", (name,)) == before
    picked = act(client, name, "winner", variant="casual").json()
    assert picked["status"] == "stopped" and picked["winner"] == "casual"
    assert picked["label_moved"]["label"] == "production" and picked["label_moved"]["previous_version"] == 1
    for user in ("p", "q"):
        data = ask(client, experiment=name, user=user, template={"name": tone, "variables": {"question": "hey"}})
        assert data["experiment"]["variant"] == "casual" and data["prompt"]["version"] == 2
    # the label moved, audited, so requests naming only the prompt get the winner too
    assert ask(client, template={"name": tone, "variables": {"question": "hey"}})["prompt"]["version"] == 2
    moves = client.get("/api/prompts", params={"name": tone}).json()["label_moves"]
    assert (moves[0]["from_version"], moves[0]["to_version"]) == (1, 2)
    assert act(client, name, "winner", variant="nobody").status_code == 422


def test_rag_takes_part_in_experiments_by_conversation(client, fake_provider, database) -> None:
    from tests.test_rag import WARRANTY, ingest

    ingest("experimental", "kettle.md", WARRANTY)
    name = "rag-by-conversation"  # fixed: these six conversations reach both variants on every run
    experiment(client, name, [{"name": "mini", "model": "openai/gpt-4o-mini", "params": {"max_tokens": 50}},
                              {"name": "haiku", "model": "anthropic/claude-haiku-4-5"}], unit="conversation",
               start=True)
    body = {"query": "How long is the warranty?", "namespace": "experimental", "experiment": name}
    missing = client.post("/api/rag", json=body)
    assert missing.status_code == 422 and missing.json()["error"]["details"][0]["field"] == "conversation_id"
    search_only = client.post("/api/rag", json={**body, "answer": False, "conversation_id": "c1"})
    assert search_only.status_code == 422
    served = set()
    for chat in ("c1", "c2", "c3", "c4", "c5", "c6"):
        response = client.post("/api/rag", json={**body, "conversation_id": chat})
        assert response.status_code == 200, response.text
        data = response.json()
        variant = data["experiment"]["variant"]
        served.add(variant)
        assert data["model"] == {"mini": "openai/gpt-4o-mini", "haiku": "anthropic/claude-haiku-4-5"}[variant]
        assert "prompt" not in data  # the variants change the model, not the prompt
    assert served == {"mini", "haiku"}
    assert rows(database, "SELECT count(*) FROM experiment_exposures WHERE experiment = %s", (name,)) == [(6,)]


# --- feedback -----------------------------------------------------------------------------------


def test_feedback_is_tied_to_the_variant_prompt_and_model(client, database) -> None:
    name, tone = unique("fb"), unique("fbtone")
    prompt(client, tone, "One.", model="local/echo")
    prompt(client, tone, "Two.", model="local/echo")
    experiment(client, name, [{"name": "one", "prompt": {"name": tone, "version": 1}},
                              {"name": "two", "prompt": {"name": tone, "version": 2}}], unit="request", start=True)
    for _ in range(6):
        data = ask(client, experiment=name, template={"name": tone, "variables": {"question": "q"}})
        given = client.post("/api/feedback", json={"request_id": data["id"], "score": 1, "comment": "nice"})
        assert given.status_code == 201, given.text
        tied = given.json()
        assert tied["experiment"] == data["experiment"] and tied["prompt"] == data["prompt"]
        assert tied["model"] == "local/echo" and tied["value"] == 1.0 and tied["scale"] == "thumbs"
        assert data["prompt"]["version"] == (1 if data["experiment"]["variant"] == "one" else 2)


def test_feedback_is_one_per_request_updatable_and_only_the_callers(client, env, database) -> None:
    env(API_KEYS="alice-key,bob-key")
    alice, bob = {"authorization": "Bearer alice-key"}, {"authorization": "Bearer bob-key"}
    answer = client.post("/api/ai_execute", json={"prompt": "hi", "model": "local/echo"}, headers=alice).json()
    request_id = answer["id"]
    first = client.post("/api/feedback", json={"request_id": request_id, "score": -1, "comment": "meh"}, headers=alice)
    assert first.status_code == 201 and first.json()["value"] == 0.0
    second = client.post("/api/feedback", json={"request_id": request_id, "score": 4, "scale": "1-5"}, headers=alice)
    assert second.status_code == 200
    assert (second.json()["value"], second.json()["comment"]) == (0.75, "meh")  # no comment sent: kept
    assert rows(database, "SELECT count(*) FROM feedback WHERE request_id = %s", (request_id,)) == [(1,)]
    assert client.get("/api/feedback", params={"request_id": request_id}, headers=alice).json()["score"] == 4
    # bob did not make the request: to him it does not exist
    assert client.post("/api/feedback", json={"request_id": request_id, "score": 1}, headers=bob).status_code == 404
    assert client.get("/api/feedback", params={"request_id": request_id}, headers=bob).status_code == 404
    unknown = client.post("/api/feedback", json={"request_id": "0" * 32, "score": 1}, headers=alice)
    assert unknown.status_code == 404


@pytest.mark.parametrize(("body", "value"), [
    ({"score": 1}, 1.0), ({"score": -1}, 0.0), ({"score": 0.3}, 0.3), ({"score": 0}, 0.0),
    ({"score": 5}, 1.0), ({"score": 2}, 0.25), ({"score": 1, "scale": "1-5"}, 0.0), ({"score": 1, "scale": "0-1"}, 1.0),
])
def test_feedback_scales_normalize_to_zero_to_one(client, body, value) -> None:
    request_id = ask(client, prompt="hi", model="local/echo")["id"]
    response = client.post("/api/feedback", json={"request_id": request_id, **body})
    assert response.status_code == 201 and response.json()["value"] == pytest.approx(value), response.text


@pytest.mark.parametrize("body", [{"score": -0.5}, {"score": 0.5, "scale": "thumbs"}, {"score": 3, "scale": "0-1"},
                                  {"score": 0.5, "scale": "1-5"}, {"score": 6}, {"score": 1, "scale": "stars"}])
def test_feedback_off_its_scale_is_a_422(client, body) -> None:
    request_id = ask(client, prompt="hi", model="local/echo")["id"]
    response = client.post("/api/feedback", json={"request_id": request_id, **body})
    assert response.status_code == 422, response.text


# --- the sample-ratio-mismatch check ------------------------------------------------------------


def test_an_srm_is_flagged_when_one_variants_exposures_are_dropped(client, database) -> None:
    from lib.experiments.store import RECORD_SQL, load_experiment

    name = "srm-check"  # a fixed name: the same 3000 units split the same way on every run
    experiment(client, name, ECHO_VARIANTS, start=True)

    async def expose() -> None:
        async with db.connect(get_settings()) as conn:
            found = await load_experiment(conn, name)
            recorded = []
            for i in range(3000):
                unit = f"synthetic/{i}"
                recorded.append({"experiment": name, "variant": assign(name, unit, found.variants).name,
                                 "unit": unit, "caller": "synthetic", "request_id": f"request-{i}"})
            async with conn.cursor() as cur:  # what record_assignment runs, in one pipeline
                await cur.executemany(RECORD_SQL, recorded)

    run_async(expose)
    healthy = client.get("/api/experiments", params={"name": name}).json()
    assert healthy["srm"]["flagged"] is False and healthy["srm"]["p_value"] > 0.001
    assert sum(v["exposures"] for v in healthy["variants"]) == 3000
    # a fifth of variant b's exposures never reach the database (a logging path that fails for it)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DELETE FROM experiment_exposures WHERE experiment = %s AND variant = 'b'"
                     " AND split_part(unit, '/', 2)::int %% 5 = 0", (name,))
    broken = client.get("/api/experiments", params={"name": name}).json()
    counts = [v["exposures"] for v in broken["variants"]]
    assert broken["srm"]["flagged"] is True and broken["srm"]["p_value"] < 0.001, counts
    assert "sample ratio mismatch" in broken["srm"]["warning"]
    assert broken["decision"]["trustworthy"] is False and broken["decision"]["summary"].startswith("sample ratio")


# --- end to end -----------------------------------------------------------------------------------


def test_an_experiment_finds_the_better_prompt_and_an_aa_test_finds_nothing(client, fake_provider, database) -> None:
    # fixed names (the module has its own database): the same users land in the same arms every run
    tone, ab, aa = "e2e-tone", "e2e-ab", "e2e-aa"
    prompt(client, tone, "Answer plainly.", model="openai/gpt-4o-mini", labels=["production"])
    prompt(client, tone, "Answer warmly, with one concrete next step.", model="openai/gpt-4o-mini")
    experiment(client, ab, [{"name": "plain", "prompt": {"name": tone, "version": 1}},
                            {"name": "warm", "prompt": {"name": tone, "version": 2}}],
               metric="positive_feedback_rate", start=True)
    experiment(client, aa, [{"name": "a1", "prompt": {"name": tone, "version": 1}},
                            {"name": "a2", "prompt": {"name": tone, "version": 1}}],
               metric="positive_feedback_rate", start=True)
    # Scripted users: version 2's answers are liked 4 times in 5, version 1's 2 times in 5.
    liked_per_five = {1: 2, 2: 4}
    answered = {1: 0, 2: 0}
    for name in (ab, aa):
        for i in range(160):
            data = ask(client, experiment=name, user=f"user-{i}", stream=False,
                       template={"name": tone, "variables": {"question": f"My kettle leaks ({i})"}})
            version = data["prompt"]["version"]
            score = 1 if answered[version] % 5 < liked_per_five[version] else -1
            answered[version] += 1
            given = client.post("/api/feedback", json={"request_id": data["id"], "score": score})
            assert given.status_code == 201 and given.json()["experiment"] == data["experiment"]
    # a streamed request says its variant in the finish metadata
    streamed = client.post("/api/ai_execute", json={"experiment": ab, "user": "user-0", "stream": True,
                                                    "template": {"name": tone, "variables": {"question": "?"}}})
    finish = [c for c in sse_chunks(streamed.text) if isinstance(c, dict) and c["type"] == "finish"][0]
    assert finish["messageMetadata"]["experiment"]["name"] == ab
    assert finish["messageMetadata"]["prompt"]["name"] == tone

    report = client.get("/api/experiments", params={"name": ab}).json()
    assert report["srm"]["flagged"] is False
    assert report["decision"]["significant"] is True and report["decision"]["best"] == "warm"
    assert "warm beats plain" in report["decision"]["summary"]
    warm = next(v for v in report["variants"] if v["name"] == "warm")
    compared = warm["metrics"]["positive_feedback_rate"]["vs_control"]
    assert compared["test"] == "two_proportion_z" and compared["difference"] > 0.25
    assert compared["p_value"] < 0.001 and compared["sequential_p_value"] < 0.05
    assert compared["ci95"][0] > 0 and compared["verdict"] == "better"
    assert warm["exposures"] + report["variants"][0]["exposures"] == 160
    assert warm["metrics"]["error_rate"]["rate"] == 0.0 and warm["metrics"]["latency"]["mean"] > 0
    assert warm["metrics"]["cost"]["mean"] > 0

    control = client.get("/api/experiments", params={"name": aa}).json()
    assert control["srm"]["flagged"] is False
    assert control["decision"]["significant"] is False and control["decision"]["worse"] == []
    # latency is left out: it is this machine's timing noise, not the traffic's
    for metric in ("positive_feedback_rate", "feedback_score", "error_rate", "cost"):
        compared = control["variants"][1]["metrics"][metric]["vs_control"]
        assert compared is None or compared["verdict"] == "inconclusive", (metric, compared)
