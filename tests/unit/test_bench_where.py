"""How bench/where.py reads py-spy's samples: each sample goes to the layer of its innermost
frame, and a sample counts as the handler's when a handler frame is anywhere in it, so
that a misread path cannot move time from one layer to another unnoticed."""

from __future__ import annotations

from pathlib import Path

from bench.where import classify, layer_of, median_of, parse_frame, wrk_command

ROOT = Path("/srv/revoker")
VENV = "/srv/revoker/.venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
LOOP = f"Runner.run ({STDLIB}/asyncio/runners.py:118)"
HANDLE = f"RequestHandler._handle_request ({VENV}/aiohttp/web_protocol.py:577)"
LANE = "FastLane.__call__ (/srv/revoker/revoker/web/fastlane.py:111)"
PIPELINE = "pipeline (/srv/revoker/revoker/web/middlewares.py:159)"
ANSWER = "answer_jti (/srv/revoker/revoker/web/check.py:82)"
PROBE = "MirrorStore._probe (/srv/revoker/revoker/store/mirror.py:926)"
RESPONSE = f"Response.__init__ ({VENV}/aiohttp/web_response.py:723)"
GUARD = "Guard.data_received (/srv/revoker/revoker/web/transport.py:201)"
PARSE = f"RequestHandler.data_received ({VENV}/aiohttp/web_protocol.py:446)"


def test_project_paths_are_read_from_the_root_and_libraries_in_full() -> None:
    assert parse_frame(PROBE, ROOT) == ("MirrorStore._probe", "revoker/store/mirror.py")
    assert parse_frame(RESPONSE, ROOT) == ("Response.__init__",
                                           f"{VENV}/aiohttp/web_response.py")
    # A virtualenv inside the checkout is a library, not the project.
    assert layer_of(parse_frame(RESPONSE, ROOT)[1]) == "aiohttp"
    assert parse_frame("<module> (revoker)", ROOT) == ("<module>", "revoker")
    assert parse_frame("no parenthesis here", ROOT) == ("no parenthesis here", "")


def test_layers_by_path() -> None:
    assert layer_of("revoker/web/transport.py") == "transport guard"
    assert layer_of("revoker/web/fastlane.py") == "pipeline"
    assert layer_of("revoker/web/middlewares.py") == "pipeline"
    assert layer_of("revoker/web/check.py") == "handlers"
    assert layer_of("revoker/store/mirror.py") == "service and store"
    assert layer_of("revoker/service.py") == "service and store"
    assert layer_of("revoker/tokens/validate.py") == "tokens"
    assert layer_of("revoker/apikeys.py") == "keys, metrics, model"
    assert layer_of("bench/baselines.py") == "hello's handler"
    assert layer_of(f"{VENV}/yarl/_url.py") == "aiohttp"
    assert layer_of(f"{STDLIB}/asyncio/runners.py") == "event loop"
    assert layer_of(f"{STDLIB}/_weakrefset.py") == "other Python"
    # A project path that merely contains a library's name is still the project's.
    assert layer_of("revoker/store/asyncio/x.py") == "service and store"


def test_samples_go_to_the_innermost_frame_and_handler_time_is_counted_whole() -> None:
    lines = [
        f"{LOOP};{HANDLE};{LANE};{PIPELINE};{ANSWER};{PROBE} 5",
        f"{LOOP};{HANDLE};{LANE};{PIPELINE};{ANSWER};{RESPONSE} 3",
        f"{LOOP};{GUARD};{PARSE} 4",
        f"{LOOP};{GUARD} 2",
        f"{LOOP} 6",
        "",
        "a line without a count",
    ]
    layers, handler, total = classify(lines, ROOT)
    assert total == 20
    assert handler == 8  # the store's probe and the response built inside the handler
    assert layers == {"service and store": 5, "aiohttp, in the handler": 3, "aiohttp": 4,
                      "transport guard": 2, "event loop": 6}


def test_hello_handler_is_a_handler() -> None:
    hello = "hello_app.<locals>.hello (/srv/revoker/bench/baselines.py:35)"
    lines = [f"{LOOP};{HANDLE};{hello};{RESPONSE} 7", f"{LOOP};{HANDLE};{hello} 1",
             f"{LOOP};{HANDLE} 2"]
    layers, handler, total = classify(lines, ROOT)
    assert (handler, total) == (8, 10)
    assert layers == {"aiohttp, in the handler": 7, "hello's handler": 1, "aiohttp": 2}


def test_wrk_sends_the_request_headers_but_its_own_host() -> None:
    request = (b"GET /v1/check/abc HTTP/1.1\r\nHost: revoker\r\nX-Revoker-Key: k1\r\n"
               b"X-Original-URI: /orders/7\r\n\r\n")
    assert wrk_command(8080, request, 16, 5) == [
        "wrk", "-t", "1", "-c", "16", "-d", "5s", "-H", "X-Revoker-Key: k1",
        "-H", "X-Original-URI: /orders/7", "http://127.0.0.1:8080/v1/check/abc"]


def test_rounds_are_summed_up_by_the_median_of_each_figure() -> None:
    def measure(rps: float, aiohttp: float, loop: float | None) -> dict[str, object]:
        layers = {"aiohttp": aiohttp} | ({} if loop is None else {"event loop": loop})
        return {"row": "mirror check", "requests_per_s": rps, "cpu_us_per_request": 1e6 / rps,
                "samples": 100, "in_handler": 0.25, "layers": layers}

    summed = median_of([measure(9000, 0.5, 0.2), measure(11000, 0.7, None),
                        measure(10000, 0.6, 0.1)])
    assert summed["row"] == "mirror check"
    assert summed["requests_per_s"] == 10000
    assert summed["cpu_us_per_request"] == 100
    # A layer a round did not sample counts as 0 there.
    assert summed["layers"] == {"aiohttp": 0.6, "event loop": 0.1}
