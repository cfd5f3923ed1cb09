"""A line-oriented bridge to the real python `cs` CloudStack client, for the Node black-box tests.

Each stdin line is a JSON request; each stdout line the JSON answer with the same id. Ops:
  call:    {"op":"call","endpoint","key","secret","command","params",{"json":true,"fetch_result":false,"method":"get"}}
  session: {"op":"session","endpoint","username","password","domain","command","params"} -> login, call with the
           session key, logout, call again (python requests, as a browser/cmk would)
"""
import json
import sys

import requests
from cs import CloudStack, CloudStackApiException, CloudStackException


def call(req):
    cs = CloudStack(
        req["endpoint"], req["key"], req["secret"], method=req.get("method", "get"), timeout=30, poll_interval=0.05
    )
    params = dict(req.get("params", {}))
    if req.get("fetch_result"):
        params["fetch_result"] = True
    try:
        data = cs._request(req["command"], json=req.get("json", True), **params)
        return {"ok": True, "status": 200, "data": data}
    except CloudStackApiException as e:
        return {"ok": False, "status": e.response.status_code, "error": e.error, "text": e.response.text}
    except CloudStackException as e:
        r = e.response
        return {"ok": False, "status": r.status_code if r is not None else 0, "error": str(e), "text": r.text if r is not None else ""}


def session(req):
    s = requests.Session()
    url = req["endpoint"]
    out = {}
    r = s.post(url, data={"command": "login", "username": req["username"], "password": req["password"],
                          "domain": req.get("domain", "/"), "response": "json"})
    out["login_status"] = r.status_code
    out["login"] = r.json()
    out["cookies"] = sorted(s.cookies.keys())
    key = r.json().get("loginresponse", {}).get("sessionkey")
    p = dict(req.get("params", {}))
    p.update({"command": req["command"], "response": "json", "sessionkey": key})
    r = s.get(url, params=p)
    out["call_status"] = r.status_code
    out["call"] = r.json()
    r = s.get(url, params={"command": "logout", "response": "json", "sessionkey": key})
    out["logout_status"] = r.status_code
    out["logout"] = r.json()
    r = requests.get(url, params=p)
    out["after_status"] = r.status_code
    return {"ok": True, "data": out}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        try:
            res = call(req) if req["op"] == "call" else session(req)
        except Exception as e:  # report, keep serving
            res = {"ok": False, "status": -1, "error": repr(e)}
        res["id"] = req["id"]
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
