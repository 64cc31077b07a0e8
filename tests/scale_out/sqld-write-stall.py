#!/usr/bin/env python3
"""sqld's writers stall, and then stop for good, under concurrent writes —
without keygate: a reproduction for libSQL's maintainers.

Twelve clients speak Hrana over HTTP (`/v2/pipeline`) as Spin's libSQL client
does: a stream per request, a read, then an INSERT of a 3 KB row (two of
the clients: an UPDATE, a DELETE and a count instead), then close.
Within a minute sqld (0.24.33, libsql HEAD) leaves a connection `Notified` for
the write slot that never takes it; every later writer, and the checkpoint
(busy-spinning a core), waits forever: requests time out after 60 s.
See docs/benchmarks.md 18. for what sqld's debug log shows.

    tests/scale_out/sqld-write-stall.py [seconds, default 60]     (SQLD_BIN, default ~/libsql/bin/sqld)
"""
import json, threading, time, urllib.request, sys, subprocess, os, socket, random, tempfile
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
port=free_port()
work=tempfile.mkdtemp(prefix="sqld-stall.")
sqld=os.environ.get("SQLD_BIN") or os.path.expanduser("~/libsql/bin/sqld")
p=subprocess.Popen([sqld,"--db-path",os.path.join(work,"data.sqld"),"--http-listen-addr",f"127.0.0.1:{port}"],stdout=open(os.path.join(work,"sqld.log"),"w"),stderr=subprocess.STDOUT)
url=f"http://127.0.0.1:{port}/v2/pipeline"
while True:
    try: socket.create_connection(("127.0.0.1",port)).close(); break
    except OSError: time.sleep(0.05)
def pipe(baton, reqs, timeout=60):
    body=json.dumps({"baton":baton,"requests":reqs}).encode()
    r=urllib.request.urlopen(urllib.request.Request(url,data=body,headers={"content-type":"application/json"}),timeout=timeout)
    return json.loads(r.read())
def ex(sql): return {"type":"execute","stmt":{"sql":sql,"args":[],"want_rows":True}}
pipe(None,[ex("PRAGMA journal_mode"),ex("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)"),ex("CREATE INDEX t_k ON t(k)"),ex("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)"),{"type":"close"}])
stop=False; lat=[]; errs={}
def worker(n):
    while not stop:
        t0=time.time()
        try:
            # like Spin: a stream per "request", two statements (a read, then a write), then close
            r=pipe(None,[ex(f"SELECT count(*) FROM u WHERE id = {n}")])
            b=r["baton"]
            if n < 2:
                stmts=[ex(f"UPDATE t SET v = 'y' WHERE k = {random.randint(0,100)}"), ex("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)"), ex("SELECT count(*) FROM t")]
                res=None
                for st in stmts:
                    r=pipe(b,[st]); b=r["baton"]
                    res=r["results"][0]
                    if res["type"]!="ok": break
                pipe(b,[{"type":"close"}])
            else:
                r=pipe(b,[ex(f"INSERT INTO t (k, v) VALUES ({random.randint(0,100)}, randomblob(3000))"),{"type":"close"}])
                res=r["results"][0]
            if res["type"]!="ok":
                c=res["error"].get("code"); errs[c]=errs.get(c,0)+1
        except Exception as e:
            errs[type(e).__name__]=errs.get(type(e).__name__,0)+1
        lat.append(time.time()-t0)
ths=[threading.Thread(target=worker,args=(i,)) for i in range(12)]
for t in ths: t.start()
time.sleep(float(sys.argv[1]) if len(sys.argv)>1 else 60)
stop=True
for t in ths: t.join(timeout=70)
lat.sort()
print("sqld log in", work); print("requests",len(lat),"p50 %.1f ms"%(lat[len(lat)//2]*1000),"p99 %.1f ms"%(lat[int(len(lat)*.99)]*1000),"max %.1f s"%lat[-1],"over 1 s:",sum(1 for x in lat if x>1),"errors",errs, "stuck threads", sum(t.is_alive() for t in ths))
p.terminate()
