"""Peak memory of the exporter's HTTP transport for one large answer (BENCHMARKS.md, "Memory on a huge answer").

    PYTHONPATH=. .venv/bin/python bench/memory.py [--max-bytes N] [--code DIR]
    PYTHONPATH=. .venv/bin/python bench/memory.py --sizes      # the largest realistic answers

A server process serves prepared answers just under the cap; for each, a fresh client process (the exporter's
`Transport` from `--code`, default this checkout) fetches and decodes it once and reports its peak RSS
(`VmHWM`) and the RSS of the same process before the call (interpreter, requests, the exporter's imports). The
server's memory is never counted. Answers:

* `plant rows`: real legacy plant-list rows (the largest realistic rows: ~1.7 kB, with {unit, value} objects);
* `tiny objects`: `[{}, {}, …]`, the worst case for a JSON parser (each 3 bytes become a ~64-byte dict);
* `emoji text`: rows whose names hold an emoji, so that the decoded text takes 4 bytes per character;
* `dense objects`, `short strings`: the densest answers still accepted (one object per 18 characters; strings
  of two letters).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEAD = '{"req_serial_num":"20240101000000000000000000000000","result_code":"1","result_msg":"success",' \
       '"result_data":{"rowCount":1,"pageList":['
TAIL = ']}}'


def _rows(target: int, row: str) -> str:
    count = max(1, (target - len(HEAD) - len(TAIL)) // (len(row.encode()) + 1))
    return HEAD + ",".join([row] * count) + TAIL


def payloads(target: int) -> dict[str, str]:
    plant = json.dumps({
        "ps_id": 1234567, "ps_name": "Dach Süd 12", "ps_type": 4, "online_status": 1, "valid_flag": 1,
        "grid_connection_status": 1, "install_date": "2023-08-08 15:28:00", "ps_location": "Hauptstraße 12, München",
        "latitude": 48.1, "longitude": 11.5, "ps_fault_status": 3, "connect_type": 2, "ps_status": 1,
        "ps_current_time_zone": "GMT+1", "grid_connection_time": 20230808152800, "build_status": 2,
        "alarm_count": 0, "fault_count": 0, "share_type": 0, "province_name": "Bayern", "city_name": "München",
        "district_name": "Schwabing", "description": None,
        **{f"{k}": {"unit": "kWh", "value": "12.345"} for k in (
            "today_energy", "total_energy", "curr_power", "total_capcity", "equivalent_hour", "co2_reduce",
            "co2_reduce_total", "today_income", "month_income", "year_income", "total_income")},
        **{f"{k}_update_time": "2025-08-17T22:31:36+08:00" for k in (
            "today_energy", "total_energy", "curr_power", "total_capcity", "equivalent_hour", "co2_reduce",
            "co2_reduce_total", "today_income", "month_income", "year_income", "total_income")},
    }, ensure_ascii=False, separators=(",", ":"))
    emoji = json.dumps({"ps_id": 1, "ps_name": "🌞 " + "x" * 200}, ensure_ascii=False, separators=(",", ":"))
    return {"plant rows": _rows(target, plant), "emoji text": _rows(target, emoji),
            "tiny objects": _rows(target, "{}"),
            # The densest answers the exporter still accepts: one object per 17 characters, or no objects
            # but 5-character strings (each a new 51-byte str).
            "dense objects": _rows(target, '{"k":"abcdefghi"}'), "short strings": _rows(target, '"ab"')}


def serve(directory: str) -> None:
    files = {p.stem: p.read_bytes() for p in Path(directory).glob("*.json")}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = files[self.path.strip("/")]
            self.send_response(200)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def fetch(url: str, name: str, max_bytes: int) -> None:
    from exporter.fetch.transport import Transport

    transport = Transport(url, timeout=120, max_bytes=max_bytes, record=lambda endpoint, result: None)
    before = _status("VmRSS")
    started = time.perf_counter()
    try:
        doc = transport.post_document("/" + name, {}, {})
        outcome = f"accepted ({len(doc['result_data']['pageList'])} rows)"
    except Exception as exc:  # the report says what happened, whatever it was
        outcome = f"refused: {getattr(exc, 'result', type(exc).__name__)}"
    print(json.dumps({"before": before, "peak": _status("VmHWM"), "seconds": time.perf_counter() - started,
                      "outcome": outcome}))


def realistic_sizes() -> None:
    """The sizes of the largest answers the exporter asks for, from the simulator (a fleet of 3,000 plants)."""
    import requests

    from exporter.simulator import Simulator
    from exporter.simulator.realtime import POINTS

    with Simulator(plants=3000, seed=1) as sim:
        base = {"Content-Type": "application/json;charset=UTF-8", "x-access-key": sim.secret_key}
        bearer = {**base, "Authorization": f"Bearer {sim.issue_tokens()['access_token']}"}
        legacy = {**base, "sys_code": "901"}
        login = requests.post(sim.url + "/openapi/login", headers=legacy, timeout=60, json={
            "appkey": sim.appkey, "user_account": "demo@example.com", "user_password": "demo-password"})
        token = login.json()["result_data"]["token"]
        ids = [str(p.ps_id) for p in sim.plants]
        points = [str(p) for p in POINTS]  # every plant point the simulator knows (73; the API allows 100)

        def size(path: str, headers: dict[str, str], body: dict[str, object]) -> int:
            r = requests.post(sim.url + path, headers=headers, json={"appkey": sim.appkey, **body}, timeout=60)
            return len(r.content)

        standard = ["83033", "83022", "83024", "83106", "83118", "83124", "83549", "83072", "83075", "83102",
                    "83105", "83252", "83326"]
        for rows in (100, 1000):
            kb = size("/openapi/platform/queryPowerStationList", bearer,
                      {"page": 1, "size": rows, "valid_flag": "1,2,3"}) / 1e3
            print(f"  platform list page of {rows:4} plants:    {kb:8.1f} kB")
            kb = size("/openapi/getPowerStationList", legacy,
                      {"curPage": 1, "size": rows, "valid_flag": "1,2,3", "token": token}) / 1e3
            print(f"  legacy list page of {rows:4} plants:      {kb:8.1f} kB")
        for plants, chosen in ((50, standard), (1000, standard), (1000, points)):
            kb = size("/openapi/platform/getPowerStationRealTimeData", bearer,
                      {"ps_id_list": ids[:plants], "point_id_list": chosen, "is_get_point_dict": "1"}) / 1e3
            print(f"  real-time, {plants:4} plants x {len(chosen):2} points: {kb:8.1f} kB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-bytes", type=int, default=None, help="the cap (default: the configuration's)")
    parser.add_argument("--size", type=int, default=None, help="answer size (default: just under the cap)")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent),
                        help="the exporter checkout whose transport is measured")
    parser.add_argument("--sizes", action="store_true", help="print the sizes of the largest realistic answers")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fetch", nargs=2, metavar=("URL", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sizes:
        realistic_sizes()
        return 0
    if args.serve:
        serve(args.serve)
        return 0
    if args.fetch:
        fetch(args.fetch[0], args.fetch[1], args.max_bytes)
        return 0
    if args.max_bytes is None:
        sys.path.insert(0, args.code)
        from exporter.config import Config

        args.max_bytes = Config(accounts=()).max_response_bytes
    size = args.size or args.max_bytes - 1024
    env = {**os.environ, "PYTHONPATH": args.code}
    with tempfile.TemporaryDirectory() as directory:
        names = {}
        for i, (label, text) in enumerate(payloads(size).items()):
            names[label] = f"p{i}"
            Path(directory, f"p{i}.json").write_text(text, encoding="utf-8")
        server = subprocess.Popen([sys.executable, __file__, "--serve", directory], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
            print(f"code: {args.code}; cap {args.max_bytes} bytes; answers of {size} bytes")
            for label, name in names.items():
                out = subprocess.run([sys.executable, __file__, "--max-bytes", str(args.max_bytes), "--fetch", url,
                                      name], env=env, capture_output=True, text=True, check=True)
                r = json.loads(out.stdout)
                print(f"  {label:14} peak RSS {r['peak'] / 1e6:7.1f} MB (before the call {r['before'] / 1e6:5.1f} MB)"
                      f"  {r['seconds']:5.2f} s  {r['outcome']}")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
