// Fuzz: thousands of random and mutated DNS messages over UDP and TCP (seeded, so a failure replays). The server
// handles every one (answers or drops it; the metrics count each), keeps answering valid queries in between,
// and its heap does not grow with the number of messages.
import dnsPacket from 'dns-packet';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { startDnsServer, type DnsServer } from './dns-helper.js';
import { api, waitFor } from './helper.js';

const SEED = Number(process.env.DNS_FUZZ_SEED ?? 20261128);

/** mulberry32: a small seeded PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const NAMES = ['web.shop.rollcall', '_web._tcp.shop.rollcall', 'web-1._web._tcp.shop.rollcall', '_services._dns-sd._udp.shop.rollcall', 'rollcall', 'nope.rollcall', 'example.com', '.'];
const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'TXT', 'SOA', 'NS', 'ANY', 'AXFR', 'CNAME'] as const;

function validQuery(r: ReturnType<typeof prng>): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: r.int(65536),
    flags: r.next() < 0.5 ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ name: r.pick(NAMES), type: r.pick(TYPES) as 'A', class: 'IN' }],
    ...(r.next() < 0.5 ? { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: r.int(65536), flags: 0 } as never] } : {}),
  });
}

/** A random message: pure noise, or a valid query with its bytes flipped, overwritten, cut, stretched or its counts and names made hostile. */
function fuzzMessage(r: ReturnType<typeof prng>): Buffer {
  if (r.next() < 0.2) return Buffer.from(Array.from({ length: r.int(600) }, () => r.int(256)));
  const m = Buffer.from(validQuery(r));
  switch (r.int(6)) {
    case 0:
      for (let i = r.int(10) + 1; i > 0; i--) m[r.int(m.length)]! ^= 1 << r.int(8);
      return m;
    case 1:
      for (let i = r.int(10) + 1; i > 0; i--) m[r.int(m.length)] = r.int(256);
      return m;
    case 2:
      return m.subarray(0, r.int(m.length));
    case 3:
      return Buffer.concat([m, Buffer.from(Array.from({ length: r.int(200) }, () => r.int(256)))]);
    case 4:
      // Hostile counts, including the "answers in a query" shapes.
      m.writeUInt16BE(r.pick([0, 1, 2, 255, 65535]), 4 + 2 * r.int(4));
      return m;
    default: {
      // Compression pointers anywhere, including to themselves and forward.
      const at = 12 + r.int(Math.max(1, m.length - 13));
      m[at] = 0xc0 | r.int(64);
      if (at + 1 < m.length) m[at + 1] = r.int(256);
      return m;
    }
  }
}

async function handledCount(s: DnsServer): Promise<number> {
  const text = (await api(`${s.url}/metrics`)).body as string;
  let total = 0;
  for (const m of text.matchAll(/^rollcall_dns_queries_total\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}

function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

t.test('fuzz over UDP and TCP: every message handled, valid queries answered throughout, bounded heap', async (t) => {
  const s = await startDnsServer(t);
  await s.register('shop', 'web', 'web-1', { address: '10.0.0.1', port: 80, metadata: { k: 'v' } });
  await s.register('shop', 'web', 'web-2', { address: 'fd00::2', port: 81 });
  const r = prng(SEED);
  t.comment(`seed ${SEED} (set DNS_FUZZ_SEED to replay another)`);

  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const waiting = new Map<number, (p: dnsPacket.DecodedPacket) => void>();
  udp.on('message', (msg) => {
    let p: dnsPacket.DecodedPacket;
    try {
      p = dnsPacket.decode(msg);
    } catch (err) {
      t.fail(`the server sent an undecodable response: ${(err as Error).message}`);
      return;
    }
    waiting.get(p.id!)?.(p);
  });
  let probeId = 0;
  const probe = async () => {
    const id = (probeId = (probeId + 1) % 65536);
    const answered = new Promise<dnsPacket.DecodedPacket>((resolve) => waiting.set(id, resolve));
    const q = dnsPacket.encode({ type: 'query', id, questions: [{ name: 'web.shop.rollcall', type: 'A' }] });
    // Resend until answered: UDP may drop under load, the server must not.
    const resend = setInterval(() => udp.send(q, s.dnsPort, '127.0.0.1'), 1000);
    udp.send(q, s.dnsPort, '127.0.0.1');
    const p = await answered;
    clearInterval(resend);
    waiting.delete(id);
    return p;
  };

  let sent = (await handledCount(s)) + 0;
  const runUdp = async (batches: number) => {
    for (let b = 0; b < batches; b++) {
      for (let i = 0; i < 50; i++) {
        udp.send(fuzzMessage(r), s.dnsPort, '127.0.0.1');
        sent++;
      }
      const p = await probe();
      sent++;
      if ((p.answers ?? []).length !== 1) t.fail(`probe after batch ${b}: ${JSON.stringify(p.answers)}`);
    }
    await waitFor(async () => (await handledCount(s)) >= sent, 30_000, `${sent} UDP messages handled`);
  };

  await runUdp(20);
  const heapBefore = heapAfterGc();
  await runUdp(80);
  t.equal(await handledCount(s), sent, `every UDP message handled (answered or dropped): ${sent}`);

  // TCP: framed fuzz pipelined over a few connections, then raw garbage streams.
  const tcpConnect = async (): Promise<Socket> => {
    const socket = connect(s.dnsPort, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    return socket;
  };
  const sockets: Socket[] = [];
  for (let c = 0; c < 10; c++) {
    const socket = await tcpConnect();
    sockets.push(socket);
    socket.resume();
    const frames: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const m = fuzzMessage(r);
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(m.length);
      frames.push(prefix, m);
      sent++;
    }
    socket.write(Buffer.concat(frames));
  }
  await waitFor(async () => (await handledCount(s)) >= sent, 60_000, `${sent} messages handled after TCP`);
  t.equal(await handledCount(s), sent, 'every framed TCP message handled');
  for (const socket of sockets) socket.destroy();

  for (let c = 0; c < 20; c++) {
    const socket = await tcpConnect();
    socket.write(Buffer.from(Array.from({ length: r.int(9000) + 1 }, () => r.int(256))));
    socket.end();
    socket.resume();
    await once(socket, 'close');
  }
  t.pass('garbage TCP streams end in a close, never a stall');

  const p = await probe();
  t.equal(p.answers?.length, 1, 'still answering valid queries');
  const tcpAnswer = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(s.dnsPort, '127.0.0.1');
    const q = dnsPacket.streamEncode({ type: 'query', id: 7, questions: [{ name: '_web._tcp.shop.rollcall', type: 'SRV' }] });
    let data = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('error', reject);
    socket.write(q);
  });
  t.equal(dnsPacket.streamDecode(tcpAnswer).answers?.length, 2, 'still answering over TCP');

  const growth = heapAfterGc() - heapBefore;
  t.comment(`heap growth over ${sent} messages after warm-up: ${(growth / 1024).toFixed(0)} KiB`);
  t.ok(growth < 16 * 1024 * 1024, 'heap does not grow with the messages (server and test share the process)');
});
