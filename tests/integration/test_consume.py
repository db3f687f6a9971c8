"""`fundflow consume` against a real Kafka broker (and a real Prometheus for the end-to-end check).

One broker and one tape for the module: six simulated trading days ending on the seed day
2025-09-12, with poison records and re-sent duplicates mixed in. An uninterrupted consumer is
the reference every other scenario (kill -9, scale-out) must equal to the cent.
"""

from __future__ import annotations

import copy
import random
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from harness.fundflow import ConsumerProc
from harness.services import wait_until
from monitor.calendars import local_date
from monitor.events import DEADLETTER_TOPIC
from monitor.simulator import Scenario, generate, truth
from tests.integration.fundflow_procs import business_lines, produce

SCENARIO = Scenario(days=6)
SEED_DAY = "2025-09-12"
POISON: list[tuple[str, bytes]] = [
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": '),  # truncated JSON
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": 1757640000000, "price": "1.07", '
                            b'"volume": 100, "trade_id": "p1"}'),  # price as a string
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": 1757640000000, "price": 1.07, '
                            b'"volume": -100, "trade_id": "p2"}'),  # negative volume
    ("fundflow.southbound.flows", b'{"kind": "southbound", "symbol": "ALIBABA", "ts": 1757640000000, '
                                  b'"channel": "SH", "buy_hkd": 1, "sell_hkd": 1, "seq": 1}'),  # bad symbol
    ("fundflow.etf.trades", b"\xff\xfe not utf-8"),
    ("fundflow.etf.trades", b'{"kind": "trade", "pad": "' + b"x" * 100_000 + b'"}'),  # over the size limit
]
DUPLICATES = 50  # trades sent twice: applied once, counted as duplicates


def _seed_ms(ev: dict[str, Any]) -> bool:
    return "ts" in ev and local_date(ev["ts"]).isoformat() == SEED_DAY


@pytest.fixture(scope="module")
def tape() -> dict[str, list[dict[str, Any]]]:
    events = list(generate(SCENARIO))
    history = [e for e in events if not _seed_ms(e)]
    seed = [e for e in events if _seed_ms(e)]
    return {"history": history, "seed": seed}


@pytest.fixture(scope="module")
def broker(tmp_path_factory, tape):
    """A broker holding the whole tape, and an uninterrupted consumer's final state."""
    from harness.services import KafkaBroker
    from tests.conftest import _start

    b = _start(KafkaBroker(tmp_path_factory.mktemp("kafka-consume")))
    stats = produce(b.bootstrap, tape["history"] + tape["seed"] + tape["seed"][:DUPLICATES], raw=POISON)
    assert sum(stats.rejected.values()) == 0, stats.rejected
    yield b
    b.stop()


TOKEN = "api-token-9f3c"  # the reference consumer runs with auth on; the e2e one with auth off


@pytest.fixture(scope="module")
def reference_proc(broker, tmp_path_factory):
    """An uninterrupted consumer over the whole tape, kept up for the API tests."""
    proc = ConsumerProc(broker.bootstrap, "reference", tmp_path_factory.mktemp("logs") / "reference.log",
                        token=TOKEN).start()
    try:
        proc.wait_ready(90)
        wait_caught_up(proc)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def reference(reference_proc) -> dict[str, Any]:
    text = reference_proc.get("/metrics")[1].decode()
    return {"documents": reference_proc.documents(), "metrics": business_lines(text),
            "status": reference_proc.json("/api/v1/status"), "metrics_text": text}


def wait_caught_up(proc: ConsumerProc, timeout: float = 120) -> None:
    """Until the consumer is ready and its last checkpoint left no lag on any owned partition."""
    def done() -> bool:
        if not proc.alive():
            raise AssertionError(f"consumer exited: {proc.log_tail()}")
        st = proc.json("/api/v1/status")
        return bool(st["ready"]) and st["consumer_lag_messages"] == 0 and st["events"]["applied"] > 0

    wait_until(done, timeout, "consumer caught up")


def clock_free(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields that do not depend on the instance's stream clock.

    Each instance's clock is the latest event on its own partitions, so while a group is split the
    intraday windows and same-time ratios of two instances are taken at slightly different moments.
    """
    doc = copy.deepcopy(doc)
    doc.pop("as_of", None)
    etf = doc.get("etf")
    if etf:
        for w in ("1m", "5m", "15m", "1h"):
            etf["net_inflow_cny"].pop(w, None)
        etf["turnover_vs_prev_session_ratio"].pop("same_time", None)
        etf.pop("volume_ratio", None)
    return doc


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Paths where two JSON documents differ, for a readable assertion message."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: list[str] = []
        for k in sorted(set(got) | set(want)):
            out += differences(got.get(k, "<absent>"), want.get(k, "<absent>"), f"{path}/{k}")
        return out
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def test_reference_run_counts_every_input(reference, tape):
    """in = applied + rejected + duplicates, exactly; poison is dead-lettered with its reason."""
    events = reference["status"]["events"]
    produced = len(tape["history"]) + len(tape["seed"]) + DUPLICATES
    assert events["duplicates"] == DUPLICATES
    assert events["applied"] + events["duplicates"] == produced
    assert events["rejected"] == len(POISON)
    text = reference["metrics_text"]
    for reason in ("bad_json", "wrong_type", "bad_number", "bad_symbol", "too_large"):
        assert f'reason="{reason}"' in text, reason


def test_poison_is_dead_lettered_with_reasons(broker, reference):
    reader = KafkaConsumer(DEADLETTER_TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                           consumer_timeout_ms=3000, group_id=None)
    letters = [orjson.loads(m.value) for m in reader]
    reader.close()
    consumer_letters = [x for x in letters if x["source"].startswith("consumer:")]
    assert len(consumer_letters) >= len(POISON)
    assert {x["reason"] for x in consumer_letters} >= {"bad_json", "wrong_type", "bad_number", "bad_symbol", "too_large"}
    assert all(x["detail"] and x["original"] is not None for x in consumer_letters)


def test_seed_day_numbers_through_kafka(reference):
    t = truth(SCENARIO)
    etf = reference["documents"]["513770.SH"]["etf"]
    assert Decimal(str(etf["turnover_cny"])) == t["etf"]["513770.SH"][SEED_DAY]["turnover"]
    assert etf["turnover_cny"] > etf["prev_turnover_cny"]
    assert round(etf["price_change_ratio"], 4) == 0.0113


def test_end_to_end_prometheus_reads_the_simulator_total(broker, reference, prometheus_factory, tmp_path):
    """simulator -> Kafka -> fundflow consume -> /metrics -> real Prometheus == simulator's own turnover."""
    proc = ConsumerProc(broker.bootstrap, "e2e", tmp_path / "e2e.log").start()
    try:
        proc.wait_ready(90)
        wait_caught_up(proc)
        assert proc.get("/api/v1/symbols")[0] == 200  # no token configured: the API is open
        prom = prometheus_factory(scrape_targets=[f"127.0.0.1:{proc.port}"], scrape_interval="1s")
        expr = 'fundflow_etf_turnover_cny{symbol="513770.SH"}'
        wait_until(lambda: prom.query_value(expr) is not None, 60, "Prometheus scraped the consumer")
        expected = truth(SCENARIO)["etf"]["513770.SH"][SEED_DAY]["turnover"]
        assert Decimal(str(prom.query_value(expr))).quantize(Decimal("0.01")) == expected
    finally:
        proc.stop()


def test_kill_9_at_random_moments_recovers_identical_state(kafka_factory, tape, reference, tmp_path):
    """SIGKILL during recovery and mid-day, three times; the final state equals the uninterrupted run."""
    b = kafka_factory()
    rng = random.Random(7)
    produce(b.bootstrap, tape["history"], raw=POISON)
    seed = tape["seed"]
    chunks = [seed[i * len(seed) // 4:(i + 1) * len(seed) // 4] for i in range(4)]
    chunks[-1] = chunks[-1] + seed[:DUPLICATES]
    log = tmp_path / "crashy.log"
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    proc.wait_ready(90)
    # 1: killed while recovering, right after a restart
    proc.kill()
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    time.sleep(rng.uniform(0.5, 2.0))
    proc.kill()
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    for chunk in chunks[:3]:
        produce(b.bootstrap, chunk)
        time.sleep(rng.uniform(0.3, 2.5))  # some of the chunk applied, maybe checkpointed
        proc.kill()
        proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    produce(b.bootstrap, chunks[3])
    try:
        proc.wait_ready(90)

        def owns_everything() -> bool:
            # a killed instance stays in the group until its session times out: until then the
            # new one owns only some partitions (and is caught up on those)
            wait_caught_up(proc)
            return set(proc.documents()) == set(reference["documents"])

        wait_until(owns_everything, 120, "the restarted consumer owns every partition")
        wait_caught_up(proc)
        assert not differences(proc.documents(), reference["documents"])
        assert business_lines(proc.get("/metrics")[1].decode()) == reference["metrics"]
    finally:
        proc.stop()


def test_two_consumers_split_then_one_takes_over(broker, reference, tmp_path):
    """Two instances export each symbol exactly once; after one dies the other exports all, right."""
    a = ConsumerProc(broker.bootstrap, "pair", tmp_path / "a.log").start()
    b = ConsumerProc(broker.bootstrap, "pair", tmp_path / "b.log").start()
    try:
        def split() -> bool:
            for p in (a, b):
                wait_caught_up(p)
            sa = set(a.documents())
            sb = set(b.documents())
            return bool(sa) and bool(sb) and not (sa & sb) and sa | sb == set(reference["documents"])

        wait_until(split, 120, "two instances sharing the symbols")
        docs = {**a.documents(), **b.documents()}
        assert {s: clock_free(d) for s, d in docs.items()} == \
            {s: clock_free(d) for s, d in reference["documents"].items()}

        a.kill()

        def took_over() -> bool:
            wait_caught_up(b)
            return set(b.documents()) == set(reference["documents"])

        wait_until(took_over, 120, "survivor owns every partition")
        assert not differences(b.documents(), reference["documents"])
        assert business_lines(b.get("/metrics")[1].decode()) == reference["metrics"]
    finally:
        a.stop()
        b.stop()


def test_consume_help_documents_every_option() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "monitor", "consume", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout
    for opt in ("--config", "--bootstrap", "--group", "--host", "--port", "--live-clock"):
        assert opt in out


# -- the HTTP API of a consumer (auth on: the reference consumer) ------------------------------

def test_api_symbol_documents_and_unknown_symbols(reference_proc, reference):
    listing = reference_proc.json("/api/v1/symbols")
    rows = {r["symbol"]: r for r in listing["symbols"]}
    assert rows["513770.SH"]["etf"] and rows["09988.HK"]["southbound"]
    assert reference_proc.json("/api/v1/symbols/513770.sh") == reference["documents"]["513770.SH"]
    status, body = reference_proc.get("/api/v1/symbols/999999.SH")
    assert status == 404 and orjson.loads(body)["error"]["status"] == 404
    assert reference_proc.get("/api/v1/symbols/09988.HK/intraday")[0] == 404  # no ETF trades
    assert reference_proc.get("/api/v1/symbols/999999.SH/history")[0] == 404


def test_api_history_and_intraday(reference_proc):
    hist = reference_proc.json("/api/v1/symbols/09988.HK/history?days=3")
    assert len(hist["southbound"]) == 3 and hist["southbound"][-1]["date"] == SEED_DAY
    curves = reference_proc.json("/api/v1/symbols/513770.SH/intraday?step=300")
    assert curves["symbol"] == "513770.SH"
    for bad in ("days=0", "days=abc", "days=1001"):
        status, body = reference_proc.get(f"/api/v1/symbols/09988.HK/history?{bad}")
        assert status == 400 and "days" in orjson.loads(body)["error"]["message"], bad
    assert reference_proc.get("/api/v1/symbols/513770.SH/intraday?step=0")[0] == 400


def test_api_streaks_and_flows(reference_proc, reference):
    docs = {s: d["southbound"] for s, d in reference["documents"].items() if "southbound" in d}
    n = max(d["streak_days"] for d in docs.values())
    assert n > 0
    streaks = reference_proc.json(f"/api/v1/streaks?min_days={n}&direction=buy")["streaks"]
    assert {r["symbol"] for r in streaks} == {s for s, d in docs.items() if d["streak_days"] >= n}
    sells = reference_proc.json("/api/v1/streaks?direction=sell")["streaks"]
    assert {r["symbol"] for r in sells} == {s for s, d in docs.items() if d["streak_days"] < 0}
    top = reference_proc.json("/api/v1/flows?window=20d&top=3&market=HK")["flows"]
    expected = sorted(docs, key=lambda s: -docs[s]["net_buy_hkd"]["20d"])[:3]
    assert [r["symbol"] for r in top] == expected
    sh = reference_proc.json("/api/v1/flows?window=20d&top=2&market=SH")["flows"]
    assert len(sh) <= 2 and all(r["symbol"].endswith(".SH") for r in sh)
    assert [r["net_inflow_cny"] for r in sh] == sorted((r["net_inflow_cny"] for r in sh), reverse=True)
    for bad in ("streaks?direction=sideways", "streaks?min_days=-1", "flows?market=XX", "flows?window=7d",
                "flows?top=0", "flows?market=SH&window=2d"):
        status, body = reference_proc.get(f"/api/v1/{bad}")
        assert status == 400 and orjson.loads(body)["error"]["message"], bad


def test_api_openapi_describes_every_route(reference_proc):
    spec = reference_proc.json("/api/v1/openapi.json")
    for path in ("/metrics", "/healthz", "/readyz", "/api/v1/symbols", "/api/v1/symbols/{symbol}",
                 "/api/v1/symbols/{symbol}/history", "/api/v1/symbols/{symbol}/intraday", "/api/v1/status",
                 "/api/v1/streaks", "/api/v1/flows", "/api/v1/sectors", "/api/v1/southbound/quota", "/ingest"):
        assert path in spec["paths"], path


def test_api_metrics_in_openmetrics_when_asked(reference_proc):
    req = urllib.request.Request(reference_proc.url + "/metrics", headers={
        "Accept": "application/openmetrics-text; version=1.0.0", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().rstrip().endswith(b"# EOF")


def test_api_refuses_missing_or_wrong_token_and_never_echoes_it(reference_proc):
    for path in ("/api/v1/symbols", "/metrics", "/api/v1/status"):
        for header in (None, "Bearer wrong", f"Basic {TOKEN}", TOKEN):
            req = urllib.request.Request(reference_proc.url + path)
            if header:
                req.add_header("Authorization", header)
            try:
                urllib.request.urlopen(req, timeout=5)
                raise AssertionError(f"{path} answered without the right token ({header})")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
                assert TOKEN.encode() not in exc.read()
    open_probe = urllib.request.urlopen(reference_proc.url + "/healthz", timeout=5)  # probes stay open
    assert open_probe.status == 200
    assert TOKEN not in reference_proc.log_path.read_text(errors="replace")
