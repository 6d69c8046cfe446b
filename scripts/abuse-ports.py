"""Throws garbage, floods, half frames, absurd lengths, slowloris, plain hellos posing as a
server or proxy, and Noise handshakes under a guessed key at every port of a cluster
running on loopback, from 127.0.0.2-127.0.0.9 (so the bots' own address keeps its
limits), then prints what happened to each kind of connection. Run bots against the
cluster meanwhile and check they all play on with nothing lost:

    tessera-cluster --max-connections-per-address 400 --join-burst-per-address 400 &
    tessera-bots --bots 200 --duration 90 --json bots.json &
    python3 scripts/abuse-ports.py assets/cluster.toml 60
"""
import asyncio, os, random, sys, time, tomllib

with open(sys.argv[1] if len(sys.argv) > 1 else "assets/cluster.toml", "rb") as file:
    cluster = tomllib.load(file)
port = lambda bind: int(bind.rsplit(":", 1)[1])
PORTS = {
    "proxy-players": [port(p["client_bind"]) for p in cluster["proxy"]],
    "server-peers": [port(s["peer_bind"]) for s in cluster["server"]],
    "server-proxies": [port(s["proxy_bind"]) for s in cluster["server"]],
}
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 60
stats = {}
def count(k): stats[k] = stats.get(k, 0) + 1
def src(): return (f"127.0.0.{random.randint(2, 9)}", 0)
async def conn(port):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=src()), 5)
async def once(kind, port, payload, hold):
    try:
        r, w = await conn(port)
        count(f"{kind} connected")
        if payload: w.write(payload); await w.drain()
        try:
            await asyncio.wait_for(r.read(), hold)
            count(f"{kind} closed by peer")
        except asyncio.TimeoutError:
            count(f"{kind} still open after {hold}s")
        w.close()
    except Exception as e:
        count(f"{kind} refused/failed: {type(e).__name__}")
async def slowloris(port, end):
    start = time.time()
    try:
        r, w = await conn(port)
        w.write(b"\x00\x00\x00\x20")  # a 32-byte frame begun, then one byte every 2 s
        while time.time() < end:
            await asyncio.sleep(2); w.write(b"\x01"); await w.drain()
        count("slowloris survived the run")
    except Exception as e:
        count(f"slowloris closed after ~{int(time.time() - start)}s ({type(e).__name__})")
hello_server_1 = bytes([0,0,0,3, 3,2,1])          # plain Hello{version 3, Role::Server(1)}
hello_proxy_1 = bytes([0,0,0,3, 3,1,1])           # plain Hello{version 3, Role::Proxy(1)}
async def main():
    end = time.time() + DURATION
    tasks = [asyncio.create_task(slowloris(p, end)) for ps in PORTS.values() for p in ps for _ in range(10)]
    while time.time() < end:
        batch = []
        for group, ports in PORTS.items():
            for port in ports:
                batch += [once("flood", port, b"", 0.5) for _ in range(20)]
                batch.append(once("garbage", port, os.urandom(random.randint(1, 4000)), 3))
                batch.append(once("half frame", port, b"\x00\x10\x00\x00" + os.urandom(100), 3))
                batch.append(once("huge prefix", port, b"\xff\xff\xff\xff", 3))
                batch.append(once("plain fake server 1", port, hello_server_1, 3))
                batch.append(once("plain fake proxy 1", port, hello_proxy_1, 3))
                batch.append(once("noise with a guessed key", port, b"\x00\x30" + os.urandom(48), 3))
        await asyncio.gather(*batch)
    await asyncio.gather(*tasks)
    for k in sorted(stats): print(f"{stats[k]:8d}  {k}")
asyncio.run(main())
