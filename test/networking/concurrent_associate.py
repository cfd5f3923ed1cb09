"""N concurrent python `cs` clients calling associateIpAddress (and waiting for each job) until the zone's
public range is exhausted, spread over several management servers. Prints one JSON line:
{"ips": [...], "errors": [...], "exhausted": n, "seconds": s, "latencies": [...]}.

usage: concurrent_associate.py <zoneid> <clients> <key> <secret> <endpoint> [<endpoint> ...]
"""
import json
import sys
import threading
import time

from cs import CloudStack, CloudStackApiException, CloudStackException


def main():
    zoneid, clients, key, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    endpoints = sys.argv[5:]
    lock = threading.Lock()
    ips, errors, latencies = [], [], []
    exhausted = [0]
    start = threading.Barrier(clients)

    def worker(i):
        api = CloudStack(endpoints[i % len(endpoints)], key, secret, timeout=60, poll_interval=0.02, job_timeout=120)
        start.wait()
        while True:
            t0 = time.monotonic()
            try:
                r = api.associateIpAddress(zoneid=zoneid, fetch_result=True)
                with lock:
                    ips.append(r["ipaddress"]["ipaddress"])
                    latencies.append(time.monotonic() - t0)
            except CloudStackApiException as e:
                err = e.error if isinstance(e.error, dict) else {"errortext": str(e.error)}
                with lock:
                    if err.get("errorcode") == 533:
                        exhausted[0] += 1
                    else:
                        errors.append({"status": getattr(e.response, "status_code", 0), "error": err})
                return
            except CloudStackException as e:
                with lock:
                    errors.append({"status": getattr(e.response, "status_code", 0), "error": str(e)})
                return
            except Exception as e:  # connection errors and the like
                with lock:
                    errors.append({"status": -1, "error": repr(e)})
                return

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"ips": ips, "errors": errors, "exhausted": exhausted[0], "seconds": time.monotonic() - t0,
                      "latencies": latencies}))


if __name__ == "__main__":
    main()
